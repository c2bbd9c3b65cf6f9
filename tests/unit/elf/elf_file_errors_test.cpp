// ElfFile::open() failures: one line naming the file and the problem.
#include <elf.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "elf/elf_file.h"

namespace dprobe::elf {
namespace {

// A file in a fresh temporary directory, removed with it.
class TempFile {
public:
  TempFile(std::string_view name, const void *bytes, size_t length) {
    std::string pattern = ::testing::TempDir() + "dprobe-elf-XXXXXX";
    dir_ = mkdtemp(pattern.data()) != nullptr ? pattern : "";
    path_ = dir_ + "/" + std::string(name);
    FILE *f = std::fopen(path_.c_str(), "wb");
    if (f != nullptr) {
      std::fwrite(bytes, 1, length, f);
      std::fclose(f);
    }
  }
  ~TempFile() {
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  const std::string &path() const { return path_; }

private:
  std::string dir_;
  std::string path_;
};

std::string open_error(const std::string &path) {
  auto opened = ElfFile::open(path);
  if (opened.has_value()) return "(opened)";
  return opened.error().text();
}

Elf64_Ehdr elf64_header(uint16_t type, uint16_t machine) {
  Elf64_Ehdr ehdr{};
  std::memcpy(ehdr.e_ident, ELFMAG, SELFMAG);
  ehdr.e_ident[EI_CLASS] = ELFCLASS64;
  ehdr.e_ident[EI_DATA] = ELFDATA2LSB;
  ehdr.e_ident[EI_VERSION] = EV_CURRENT;
  ehdr.e_type = type;
  ehdr.e_machine = machine;
  ehdr.e_version = EV_CURRENT;
  ehdr.e_ehsize = sizeof(Elf64_Ehdr);
  return ehdr;
}

TEST(ElfFileOpen, MissingFile) {
  auto opened = ElfFile::open("/nonexistent/dprobe-elf-test");
  ASSERT_FALSE(opened.has_value());
  EXPECT_EQ(opened.error().errno_value, ENOENT);
  EXPECT_EQ(opened.error().text(), "/nonexistent/dprobe-elf-test: No such file or directory");
}

TEST(ElfFileOpen, Directory) {
  auto opened = ElfFile::open("/");
  ASSERT_FALSE(opened.has_value());
  EXPECT_EQ(opened.error().text(), "/: Is a directory");
}

TEST(ElfFileOpen, TextFileIsNotElf) {
  const char text[] = "#!/bin/sh\necho not an ELF file\n";
  TempFile file("script.sh", text, sizeof(text) - 1);
  EXPECT_EQ(open_error(file.path()), file.path() + ": not an ELF file");
}

TEST(ElfFileOpen, EmptyFileIsNotElf) {
  TempFile file("empty", "", 0);
  EXPECT_EQ(open_error(file.path()), file.path() + ": not an ELF file");
}

TEST(ElfFileOpen, ThirtyTwoBitElf) {
  Elf32_Ehdr ehdr{};
  std::memcpy(ehdr.e_ident, ELFMAG, SELFMAG);
  ehdr.e_ident[EI_CLASS] = ELFCLASS32;
  ehdr.e_ident[EI_DATA] = ELFDATA2LSB;
  ehdr.e_ident[EI_VERSION] = EV_CURRENT;
  ehdr.e_type = ET_EXEC;
  ehdr.e_machine = EM_386;
  ehdr.e_version = EV_CURRENT;
  ehdr.e_ehsize = sizeof(Elf32_Ehdr);
  TempFile file("i386", &ehdr, sizeof(ehdr));
  EXPECT_EQ(open_error(file.path()), file.path() + ": not an x86-64 ELF file");
}

TEST(ElfFileOpen, OtherMachine) {
  Elf64_Ehdr ehdr = elf64_header(ET_DYN, EM_AARCH64);
  TempFile file("aarch64", &ehdr, sizeof(ehdr));
  EXPECT_EQ(open_error(file.path()), file.path() + ": not an x86-64 ELF file");
}

TEST(ElfFileOpen, ObjectFileIsNotAnExecutable) {
  Elf64_Ehdr ehdr = elf64_header(ET_REL, EM_X86_64);
  TempFile file("object.o", &ehdr, sizeof(ehdr));
  EXPECT_EQ(open_error(file.path()), file.path() + ": not an executable or shared library");
}

TEST(ElfFileOpen, MinimalExecutableWithoutSymbolsOrSegments) {
  Elf64_Ehdr ehdr = elf64_header(ET_EXEC, EM_X86_64);
  ehdr.e_entry = 0x401000;
  TempFile file("bare", &ehdr, sizeof(ehdr));
  auto opened = ElfFile::open(file.path());
  ASSERT_TRUE(opened.has_value()) << opened.error().text();
  const ElfFile &elf = **opened;
  EXPECT_FALSE(elf.is_dynamic());
  EXPECT_EQ(elf.entry(), 0x401000u);
  EXPECT_TRUE(elf.load_segments().empty());
  EXPECT_TRUE(elf.functions().empty());
  EXPECT_TRUE(elf.all_symbols().empty());
  EXPECT_EQ(elf.build_id(), "");
  EXPECT_EQ(elf.function_containing(0x401000), nullptr);
  EXPECT_EQ(elf.resolve_function("main").error().text(), file.path() + ": no function 'main'");
  EXPECT_EQ(elf.vaddr_to_file_offset(0x401000).error().text(),
            file.path() +
                ": address 0x401000 is not in the file-backed part of any loadable segment");
}

} // namespace
} // namespace dprobe::elf
