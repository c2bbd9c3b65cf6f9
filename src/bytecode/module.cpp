#include "bytecode/module.h"

namespace dprobe::bytecode {

uint32_t packed_size(const std::vector<FieldKind>& fields) {
  uint32_t size = 0;
  for (FieldKind kind : fields)
    size += field_size(kind);
  return size;
}

uint32_t MapSchema::key_size() const {
  return packed_size(key);
}

uint32_t PrintfFormat::args_size() const {
  return packed_size(args);
}

VmModuleTables::VmModuleTables(const Module& module) : module_(module) {
  maps_.reserve(module.maps.size());
  for (const MapSchema& map : module.maps)
    maps_.push_back(VmMapInfo{map.key_size()});
  formats_.reserve(module.formats.size());
  for (const PrintfFormat& format : module.formats)
    formats_.push_back(VmFormatInfo{format.args_size()});
  strings_.reserve(module.strings.size());
  for (const std::string& s : module.strings) {
    strings_.push_back(VmString{s.data(), static_cast<uint32_t>(s.size())});
  }
  view_ = VmModule{maps_.data(),    static_cast<uint32_t>(maps_.size()),
                   formats_.data(), static_cast<uint32_t>(formats_.size()),
                   strings_.data(), static_cast<uint32_t>(strings_.size())};
}

VmProgram VmModuleTables::program(uint32_t index) const {
  if (index >= module_.programs.size()) return VmProgram{nullptr, 0, 0};
  const Program& p = module_.programs[index];
  return VmProgram{p.code.data(), static_cast<uint32_t>(p.code.size()), p.frame_size};
}

} // namespace dprobe::bytecode
