#include "elf/elf_file.h"

#include <fcntl.h>
#include <gelf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <limits>

#include "elf/build_id.h"
#include "elf/elf_handle.h"
#include "elf/symbol_reader.h"

namespace dprobe::elf {

Result<std::unique_ptr<ElfFile>> ElfFile::open(const std::string &path) {
  // Idempotent; libelf only needs it once per process, but calling it here keeps us free of
  // global "initialized" state.
  if (elf_version(EV_CURRENT) == EV_NONE) return fail("{}: libelf: {}", path, elf_errmsg(-1));

  // O_NONBLOCK: opening a FIFO by mistake must not hang; it has no effect on regular files.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd.valid()) return fail_errno("{}", path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return fail_errno("{}", path);
  if (S_ISDIR(st.st_mode)) return fail_code(EISDIR, "{}", path);
  if (!S_ISREG(st.st_mode)) return fail("{}: not a regular file", path);

  // ELF_C_READ, not ELF_C_READ_MMAP: a mapping would turn a file truncated under us into
  // SIGBUS in dprobe, and would show up as one more mapping of the file in our own maps.
  ElfHandle elf(elf_begin(fd.get(), ELF_C_READ, nullptr));
  if (elf == nullptr) return fail("{}: libelf: {}", path, elf_errmsg(-1));
  if (elf_kind(elf.get()) != ELF_K_ELF) return fail("{}: not an ELF file", path);
  GElf_Ehdr ehdr;
  if (gelf_getehdr(elf.get(), &ehdr) == nullptr) {
    return fail("{}: malformed ELF header: {}", path, elf_errmsg(-1));
  }
  if (gelf_getclass(elf.get()) != ELFCLASS64 || ehdr.e_machine != EM_X86_64) {
    return fail("{}: not an x86-64 ELF file", path);
  }
  if (ehdr.e_type != ET_EXEC && ehdr.e_type != ET_DYN) {
    return fail("{}: not an executable or shared library", path);
  }

  auto segments = read_load_segments(elf.get());
  if (!segments) return with_context(segments.error(), path);
  auto symbols = read_symbols(elf.get());
  if (!symbols) return with_context(symbols.error(), path);

  std::unique_ptr<ElfFile> file(new ElfFile());
  file->path_ = path;
  file->is_dynamic_ = ehdr.e_type == ET_DYN;
  file->entry_ = ehdr.e_entry;
  file->device_ = st.st_dev;
  file->inode_ = st.st_ino;
  file->segments_ = std::move(*segments);
  file->symbols_ = SymbolTable(std::move(*symbols));
  file->build_id_ = read_build_id(elf.get());
  file->elf_ = elf.release();
  file->fd_ = std::move(fd);
  return file;
}

ElfFile::~ElfFile() {
  if (elf_ != nullptr) elf_end(elf_);
}

Result<Symbol> ElfFile::resolve_function(std::string_view name) const {
  if (const Symbol *s = find_function(name)) return *s;
  if (find_symbol(name) != nullptr) return fail("{}: '{}' is not a function", path_, name);
  std::vector<std::string_view> names = symbols_.function_names();
  std::vector<std::string> near = suggest_near_names(name, names);
  return fail("{}: no function '{}'{}", path_, name, format_suggestions(near));
}

Result<uint64_t> ElfFile::vaddr_to_file_offset(uint64_t vaddr) const {
  const LoadSegment *s = segment_for_vaddr(segments_, vaddr);
  if (s == nullptr) {
    return fail("{}: address 0x{:x} is not in the file-backed part of any loadable segment", path_,
                vaddr);
  }
  return s->file_offset + (vaddr - s->vaddr);
}

Result<uint64_t> ElfFile::file_offset_to_vaddr(uint64_t offset) const {
  const LoadSegment *s = segment_for_file_offset(segments_, offset);
  if (s == nullptr) {
    return fail("{}: file offset 0x{:x} is not in any loadable segment", path_, offset);
  }
  return s->vaddr + (offset - s->file_offset);
}

Result<std::vector<uint8_t>> ElfFile::read_at_vaddr(uint64_t vaddr, size_t length) const {
  const LoadSegment *s = segment_for_vaddr(segments_, vaddr);
  if (s == nullptr || length > s->filesz - (vaddr - s->vaddr)) {
    return fail("{}: bytes 0x{:x}..0x{:x} are not all in the file-backed part of one loadable "
                "segment",
                path_, vaddr, vaddr + length);
  }
  uint64_t offset = s->file_offset + (vaddr - s->vaddr);
  if (offset > static_cast<uint64_t>(std::numeric_limits<off_t>::max())) {
    return fail("{}: file offset 0x{:x} too large", path_, offset);
  }
  std::vector<uint8_t> bytes(length);
  size_t done = 0;
  while (done < length) {
    ssize_t n =
        ::pread(fd_.get(), bytes.data() + done, length - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_errno("{}: read at offset 0x{:x}", path_, offset + done);
    }
    // The segment table promised these bytes: a short file is truncated or changed under us.
    if (n == 0) return fail("{}: file ends before offset 0x{:x}", path_, offset + done);
    done += static_cast<size_t>(n);
  }
  return bytes;
}

Result<uint64_t> ElfFile::load_bias(uint64_t mapping_start, uint64_t mapping_offset) const {
  std::optional<uint64_t> bias = load_bias_for_mapping(segments_, mapping_start, mapping_offset);
  if (!bias) {
    return fail("{}: no loadable segment at file offset 0x{:x} (mapped at 0x{:x})", path_,
                mapping_offset, mapping_start);
  }
  return *bias;
}

} // namespace dprobe::elf
