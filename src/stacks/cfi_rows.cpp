#include "stacks/cfi_rows.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <gelf.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>

#include "common/scope_guard.h"

namespace dprobe::stacks {

namespace {

constexpr int kDwarfRbp = 6;
constexpr int kDwarfRsp = 7;
constexpr int kDwarfReturnAddress = 16;

/// .eh_frame_hdr's sorted FDE table: the initial location of every FDE, as link-time addresses.
Result<std::vector<uint64_t>> fde_starts(Elf* elf, const std::string& path) {
  size_t shstrndx = 0;
  if (elf_getshdrstrndx(elf, &shstrndx) != 0) return fail("{}: no section names", path);
  for (Elf_Scn* scn = elf_nextscn(elf, nullptr); scn != nullptr; scn = elf_nextscn(elf, scn)) {
    GElf_Shdr shdr;
    if (gelf_getshdr(scn, &shdr) == nullptr) continue;
    const char* name = elf_strptr(elf, shstrndx, shdr.sh_name);
    if (name == nullptr || std::strcmp(name, ".eh_frame_hdr") != 0) continue;
    Elf_Data* data = elf_getdata(scn, nullptr);
    if (data == nullptr || data->d_buf == nullptr || data->d_size < 12) break;
    const auto* bytes = static_cast<const uint8_t*>(data->d_buf);
    // version 1; eh_frame_ptr (4-byte encodings only); fde_count udata4; table datarel sdata4.
    const uint8_t ptr_enc = bytes[1], count_enc = bytes[2], table_enc = bytes[3];
    const auto four_byte = [](uint8_t enc) { return (enc & 0x0f) == 0x03 || (enc & 0x0f) == 0x0b; };
    if (bytes[0] != 1 || !four_byte(ptr_enc) || count_enc != 0x03 || table_enc != 0x3b) {
      return fail("{}: .eh_frame_hdr encodings {:#x} {:#x} {:#x} are not supported", path,
                  ptr_enc, count_enc, table_enc);
    }
    uint32_t count = 0;
    std::memcpy(&count, bytes + 8, 4);
    if (12 + uint64_t{count} * 8 > data->d_size) return fail("{}: .eh_frame_hdr is truncated", path);
    std::vector<uint64_t> starts;
    starts.reserve(count);
    for (uint32_t i = 0; i < count; ++i) {
      int32_t location = 0;
      std::memcpy(&location, bytes + 12 + 8 * uint64_t{i}, 4);
      starts.push_back(shdr.sh_addr + static_cast<int64_t>(location));
    }
    std::sort(starts.begin(), starts.end());
    starts.erase(std::unique(starts.begin(), starts.end()), starts.end());
    return starts;
  }
  return fail("{}: no .eh_frame_hdr (no call-frame information to unwind with)", path);
}

/// Offset from the CFA of a register saved by DW_CFA_offset: nullopt for any other rule.
/// `undefined` / `same` report those two rules.
std::optional<int64_t> saved_at_cfa_offset(Dwarf_Frame* frame, int regno, bool& undefined,
                                           bool& same) {
  Dwarf_Op ops_mem[3];
  Dwarf_Op* ops = nullptr;
  size_t nops = 0;
  undefined = same = false;
  if (dwarf_frame_register(frame, regno, ops_mem, &ops, &nops) != 0) return std::nullopt;
  if (nops == 0) {
    undefined = ops == ops_mem;
    same = ops == nullptr;
    return std::nullopt;
  }
  if (ops[0].atom != DW_OP_call_frame_cfa) return std::nullopt;
  if (nops == 1) return 0;
  if (nops == 2 && ops[1].atom == DW_OP_plus_uconst) return static_cast<int64_t>(ops[1].number);
  return std::nullopt; // a value rather than a location (DW_OP_stack_value), or an expression
}

abi::UnwindRow row_for(Dwarf_Frame* frame, uint32_t pc) {
  abi::UnwindRow row{};
  row.pc = pc;
  row.rule = abi::kUnwindNoInfo;
  Dwarf_Op* cfa = nullptr;
  size_t cfa_ops = 0;
  bool undefined = false, same = false;
  const std::optional<int64_t> ra = saved_at_cfa_offset(frame, kDwarfReturnAddress, undefined, same);
  if (undefined) {
    row.rule = abi::kUnwindOutermost;
    return row;
  }
  if (!ra || *ra != -8) return row;
  if (dwarf_frame_cfa(frame, &cfa, &cfa_ops) != 0 || cfa_ops != 1) return row;
  // elfutils gives a register + offset CFA as DW_OP_bregx (register, offset), or as DW_OP_bregN.
  int base = -1;
  int64_t offset = 0;
  if (cfa[0].atom == DW_OP_bregx) {
    base = static_cast<int>(cfa[0].number);
    offset = static_cast<int64_t>(cfa[0].number2);
  } else if (cfa[0].atom >= DW_OP_breg0 && cfa[0].atom <= DW_OP_breg31) {
    base = cfa[0].atom - DW_OP_breg0;
    offset = static_cast<int64_t>(cfa[0].number);
  }
  if (base != kDwarfRsp && base != kDwarfRbp) base = -1;
  if (base < 0 || offset < std::numeric_limits<int32_t>::min() ||
      offset > std::numeric_limits<int32_t>::max()) {
    return row;
  }
  const std::optional<int64_t> rbp = saved_at_cfa_offset(frame, kDwarfRbp, undefined, same);
  if (rbp) {
    if (*rbp == 0 || *rbp < std::numeric_limits<int16_t>::min() ||
        *rbp > std::numeric_limits<int16_t>::max()) {
      return row;
    }
    row.rbp_offset = static_cast<int16_t>(*rbp);
  } else if (!undefined && !same) {
    return row; // rbp recovered by an expression: not something the walk can follow
  }
  row.cfa_offset = static_cast<int32_t>(offset);
  row.rule = base == kDwarfRsp ? abi::kUnwindCfaRsp : abi::kUnwindCfaRbp;
  return row;
}

bool same_rule(const abi::UnwindRow& a, const abi::UnwindRow& b) {
  return a.rule == b.rule && a.cfa_offset == b.cfa_offset && a.rbp_offset == b.rbp_offset;
}

} // namespace

void append_row(CfiRows& out, const abi::UnwindRow& row) {
  // Rows must stay sorted for the walk's binary search: a row before the last one (FDEs that
  // overlap) is dropped, the earlier FDE's rule holding there.
  if (!out.rows.empty() && row.pc < out.rows.back().pc) return;
  if (!out.rows.empty() && same_rule(out.rows.back(), row)) return;
  if (!out.rows.empty() && out.rows.back().pc == row.pc) {
    out.rows.back() = row;
    return;
  }
  out.rows.push_back(row);
  if (row.rule == abi::kUnwindNoInfo) ++out.unusable;
}

Result<CfiRows> read_cfi_rows(const elf::ElfFile& file) {
  Elf* elf = file.elf_handle();
  auto starts = fde_starts(elf, file.path());
  if (!starts) {
    // No .eh_frame_hdr (static executables are often linked without one): the functions'
    // symbols say where to look; an FDE that directly follows another is found from its end.
    std::vector<uint64_t> functions;
    for (const elf::Symbol& symbol : file.functions()) functions.push_back(symbol.address);
    if (functions.empty()) return std::unexpected(starts.error());
    std::sort(functions.begin(), functions.end());
    functions.erase(std::unique(functions.begin(), functions.end()), functions.end());
    starts = std::move(functions);
  }
  Dwarf_CFI* cfi = dwarf_getcfi_elf(elf);
  if (cfi == nullptr) return fail("{}: unreadable .eh_frame: {}", file.path(), dwarf_errmsg(-1));
  ScopeGuard end_cfi([cfi] { dwarf_cfi_end(cfi); });
  CfiRows out;
  constexpr uint64_t kMaxPc = std::numeric_limits<uint32_t>::max();
  for (size_t i = 0; i < starts->size(); ++i) {
    const uint64_t next_fde = i + 1 < starts->size() ? (*starts)[i + 1] : UINT64_MAX;
    uint64_t address = (*starts)[i];
    if (address > kMaxPc) break;
    uint64_t end = address;
    ++out.fdes;
    // One FDE's rows: each dwarf_cfi_addrframe names the range its rule holds for.
    while (address < next_fde && address <= kMaxPc) {
      Dwarf_Frame* frame = nullptr;
      if (dwarf_cfi_addrframe(cfi, address, &frame) != 0) break;
      Dwarf_Addr start = 0, stop = 0;
      bool signal = false;
      const bool ok = dwarf_frame_info(frame, &start, &stop, &signal) >= 0;
      abi::UnwindRow row = row_for(frame, static_cast<uint32_t>(address));
      // A signal trampoline (glibc's __restore_rt): its CFI is DWARF expressions over the
      // kernel's ucontext_t, which the walk reads directly.
      if (signal && ok) row = abi::UnwindRow{row.pc, 0, 0, abi::kUnwindSignalFrame, 0};
      std::free(frame);
      if (!ok || stop <= address) break;
      append_row(out, row);
      end = std::min<uint64_t>(stop, kMaxPc);
      address = stop;
    }
    if (end < next_fde && end <= kMaxPc) {
      abi::UnwindRow gap{};
      gap.pc = static_cast<uint32_t>(end);
      gap.rule = abi::kUnwindNoInfo;
      append_row(out, gap);
    }
  }
  return out;
}

} // namespace dprobe::stacks
