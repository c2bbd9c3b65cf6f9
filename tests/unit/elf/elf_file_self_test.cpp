// ElfFile on the test executable itself, checked against what the loader mapped.
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

#include "elf/elf_file.h"
#include "self_image.h"

// Hand-written so that size and bytes are known exactly:
//   dprobe_elf_test_add:   8d 04 37   lea (%rdi,%rsi),%eax
//                          c3         ret
//   dprobe_elf_test_alias: a second global function name at the same address
//   dprobe_elf_test_label: a global label without a type (NOTYPE)
//   dprobe_elf_test_local_label: a local label (only in .symtab)
asm(R"(
  .text
  .globl dprobe_elf_test_add
  .type dprobe_elf_test_add, @function
dprobe_elf_test_add:
  leal (%rdi,%rsi), %eax
  ret
  .size dprobe_elf_test_add, .-dprobe_elf_test_add
  .globl dprobe_elf_test_alias
  .type dprobe_elf_test_alias, @function
  .set dprobe_elf_test_alias, dprobe_elf_test_add
  .size dprobe_elf_test_alias, 4
  .globl dprobe_elf_test_label
dprobe_elf_test_label:
  nop
dprobe_elf_test_local_label:
  ret
)");

extern "C" {
int dprobe_elf_test_add(int a, int b);
int dprobe_elf_test_alias(int a, int b);
void dprobe_elf_test_label();

__attribute__((noinline, used)) unsigned dprobe_elf_test_work(unsigned x) {
  return x * 3u + 1u;
}

__attribute__((used)) int dprobe_elf_test_counter = 0x12345678;
__attribute__((used)) char dprobe_elf_test_zeroes[1 << 16];
}

namespace dprobe::elf {
namespace {

using testing::LoadedObject;

class SelfElfTest : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    auto opened = ElfFile::open("/proc/self/exe");
    ASSERT_TRUE(opened.has_value()) << opened.error().text();
    file_ = opened->release();
    program_ = new LoadedObject(testing::main_program());
  }
  static void TearDownTestSuite() {
    delete file_;
    delete program_;
  }

  static uint64_t runtime(uint64_t vaddr) { return program_->bias + vaddr; }
  template <class F> static uint64_t address_of(F *f) { return reinterpret_cast<uint64_t>(f); }

  static ElfFile *file_;
  static LoadedObject *program_;
};

ElfFile *SelfElfTest::file_ = nullptr;
LoadedObject *SelfElfTest::program_ = nullptr;

TEST_F(SelfElfTest, HeaderFacts) {
  EXPECT_EQ(file_->path(), "/proc/self/exe");
  EXPECT_EQ(file_->is_dynamic(), program_->bias != 0);
  EXPECT_EQ(runtime(file_->entry()), getauxval(AT_ENTRY));
  struct stat st {};
  ASSERT_EQ(stat("/proc/self/exe", &st), 0);
  EXPECT_EQ(file_->device(), st.st_dev);
  EXPECT_EQ(file_->inode(), st.st_ino);
}

TEST_F(SelfElfTest, LoadSegmentsEqualTheLoadedProgramHeaders) {
  std::vector<LoadSegment> expected;
  for (const ElfW(Phdr) & phdr : program_->phdrs) {
    if (phdr.p_type != PT_LOAD) continue;
    expected.push_back({.vaddr = phdr.p_vaddr,
                        .memsz = phdr.p_memsz,
                        .file_offset = phdr.p_offset,
                        .filesz = phdr.p_filesz,
                        .readable = (phdr.p_flags & PF_R) != 0,
                        .writable = (phdr.p_flags & PF_W) != 0,
                        .executable = (phdr.p_flags & PF_X) != 0});
  }
  ASSERT_FALSE(expected.empty());
  EXPECT_EQ(std::vector<LoadSegment>(file_->load_segments().begin(), file_->load_segments().end()),
            expected);
}

TEST_F(SelfElfTest, HandWrittenFunctionHasExactSizeAndBytes) {
  const Symbol *add = file_->find_function("dprobe_elf_test_add");
  ASSERT_NE(add, nullptr);
  EXPECT_EQ(add->size, 4u);
  EXPECT_TRUE(add->is_function);
  EXPECT_TRUE(add->is_global);
  EXPECT_EQ(runtime(add->address), address_of(&dprobe_elf_test_add));
  auto bytes = file_->read_at_vaddr(add->address, add->size);
  ASSERT_TRUE(bytes.has_value()) << bytes.error().text();
  EXPECT_EQ(*bytes, (std::vector<uint8_t>{0x8d, 0x04, 0x37, 0xc3}));
  EXPECT_EQ(dprobe_elf_test_add(40, 2), 42);
}

TEST_F(SelfElfTest, CompiledFunctionMatchesMemory) {
  const Symbol *work = file_->find_function("dprobe_elf_test_work");
  ASSERT_NE(work, nullptr);
  EXPECT_EQ(runtime(work->address), address_of(&dprobe_elf_test_work));
  ASSERT_GT(work->size, 0u);
  auto bytes = file_->read_at_vaddr(work->address, work->size);
  ASSERT_TRUE(bytes.has_value()) << bytes.error().text();
  const auto *in_memory = reinterpret_cast<const uint8_t *>(address_of(&dprobe_elf_test_work));
  EXPECT_EQ(*bytes, std::vector<uint8_t>(in_memory, in_memory + work->size));
  // st_size ends right after the function's last instruction: here its ret.
  EXPECT_EQ(bytes->back(), 0xc3);
  EXPECT_EQ(file_->function_containing(work->address), work);
  EXPECT_EQ(file_->function_containing(work->address + work->size - 1), work);
  EXPECT_NE(file_->function_containing(work->address + work->size), work);
}

TEST_F(SelfElfTest, AliasesAndLabels) {
  const Symbol *add = file_->find_function("dprobe_elf_test_add");
  const Symbol *alias = file_->find_function("dprobe_elf_test_alias");
  ASSERT_NE(add, nullptr);
  ASSERT_NE(alias, nullptr);
  EXPECT_EQ(alias->address, add->address);
  EXPECT_EQ(alias->size, 4u);
  // Both global at one address: the first name wins.
  EXPECT_EQ(file_->function_containing(add->address + 3), add);

  EXPECT_EQ(file_->find_function("dprobe_elf_test_label"), nullptr);
  const Symbol *label = file_->find_symbol("dprobe_elf_test_label");
  ASSERT_NE(label, nullptr);
  EXPECT_FALSE(label->is_function);
  EXPECT_EQ(label->address, add->address + 4);
  EXPECT_EQ(runtime(label->address), address_of(&dprobe_elf_test_label));
  const Symbol *local = file_->find_symbol("dprobe_elf_test_local_label");
  ASSERT_NE(local, nullptr);
  EXPECT_FALSE(local->is_global);
  EXPECT_EQ(local->address, add->address + 5);
}

TEST_F(SelfElfTest, DataSymbolsAndBss) {
  const Symbol *counter = file_->find_symbol("dprobe_elf_test_counter");
  ASSERT_NE(counter, nullptr);
  EXPECT_FALSE(counter->is_function);
  EXPECT_EQ(counter->size, sizeof(int));
  EXPECT_EQ(runtime(counter->address), reinterpret_cast<uint64_t>(&dprobe_elf_test_counter));
  auto bytes = file_->read_at_vaddr(counter->address, 4);
  ASSERT_TRUE(bytes.has_value()) << bytes.error().text();
  EXPECT_EQ(*bytes, (std::vector<uint8_t>{0x78, 0x56, 0x34, 0x12}));

  const Symbol *zeroes = file_->find_symbol("dprobe_elf_test_zeroes");
  ASSERT_NE(zeroes, nullptr);
  EXPECT_EQ(zeroes->size, 1u << 16);
  uint64_t inside_bss = zeroes->address + zeroes->size - 1;
  auto offset = file_->vaddr_to_file_offset(inside_bss);
  ASSERT_FALSE(offset.has_value());
  EXPECT_EQ(offset.error().text(),
            fmt::format("/proc/self/exe: address 0x{:x} is not in the file-backed part of any "
                        "loadable segment",
                        inside_bss));
  EXPECT_FALSE(file_->read_at_vaddr(inside_bss, 1).has_value());
}

TEST_F(SelfElfTest, ReadMustStayInsideOneSegment) {
  const LoadSegment &first = file_->load_segments().front();
  EXPECT_TRUE(file_->read_at_vaddr(first.vaddr + first.filesz - 1, 1).has_value());
  auto past = file_->read_at_vaddr(first.vaddr + first.filesz - 1, 2);
  ASSERT_FALSE(past.has_value());
  EXPECT_EQ(past.error().text(),
            fmt::format("/proc/self/exe: bytes 0x{:x}..0x{:x} are not all in the file-backed "
                        "part of one loadable segment",
                        first.vaddr + first.filesz - 1, first.vaddr + first.filesz + 1));
  auto empty = file_->read_at_vaddr(first.vaddr, 0);
  ASSERT_TRUE(empty.has_value());
  EXPECT_TRUE(empty->empty());
}

TEST_F(SelfElfTest, OffsetAddressRoundTripsForEveryLoadSegment) {
  for (const LoadSegment &s : file_->load_segments()) {
    if (s.filesz == 0) continue;
    for (uint64_t delta : {uint64_t{0}, s.filesz / 2, s.filesz - 1}) {
      auto offset = file_->vaddr_to_file_offset(s.vaddr + delta);
      ASSERT_TRUE(offset.has_value()) << offset.error().text();
      EXPECT_EQ(*offset, s.file_offset + delta);
      auto vaddr = file_->file_offset_to_vaddr(*offset);
      ASSERT_TRUE(vaddr.has_value()) << vaddr.error().text();
      EXPECT_EQ(*vaddr, s.vaddr + delta);
    }
  }
  auto beyond = file_->file_offset_to_vaddr(uint64_t{1} << 40);
  ASSERT_FALSE(beyond.has_value());
  EXPECT_EQ(beyond.error().text(),
            "/proc/self/exe: file offset 0x10000000000 is not in any loadable segment");
}

TEST_F(SelfElfTest, FileOffsetOfAFunctionHoldsItsBytes) {
  const Symbol *add = file_->find_function("dprobe_elf_test_add");
  ASSERT_NE(add, nullptr);
  auto offset = file_->vaddr_to_file_offset(add->address);
  ASSERT_TRUE(offset.has_value());
  std::ifstream in("/proc/self/exe", std::ios::binary);
  in.seekg(static_cast<std::streamoff>(*offset));
  char bytes[4] = {};
  in.read(bytes, 4);
  EXPECT_EQ(std::memcmp(bytes, "\x8d\x04\x37\xc3", 4), 0);
}

TEST_F(SelfElfTest, LoadBiasFromEveryMappingOfThisFile) {
  char exe[4096] = {};
  ssize_t length = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  ASSERT_GT(length, 0);
  uint64_t image_start = UINT64_MAX;
  uint64_t image_end = 0;
  for (const LoadSegment &s : file_->load_segments()) {
    image_start = std::min(image_start, runtime(s.vaddr));
    image_end = std::max(image_end, runtime(s.vaddr + s.memsz));
  }
  std::ifstream maps("/proc/self/maps");
  std::string line;
  int mappings = 0;
  while (std::getline(maps, line)) {
    // start-end perms offset dev inode path
    std::istringstream fields(line);
    std::string range, perms, offset_hex, dev, inode, path;
    fields >> range >> perms >> offset_hex >> dev >> inode >> path;
    if (path != exe) continue;
    uint64_t start = std::stoull(range.substr(0, range.find('-')), nullptr, 16);
    // Only the loader's mappings: anything else may mmap the file too.
    if (start < image_start || start >= image_end) continue;
    uint64_t offset = std::stoull(offset_hex, nullptr, 16);
    EXPECT_EQ(std::stoull(inode), file_->inode()) << line;
    auto bias = file_->load_bias(start, offset);
    ASSERT_TRUE(bias.has_value()) << bias.error().text();
    EXPECT_EQ(*bias, program_->bias) << line;
    ++mappings;
  }
  EXPECT_GE(mappings, 3); // at least r--, r-x and rw- (or r-- after RELRO)
}

TEST_F(SelfElfTest, BuildIdEqualsTheNoteInMemory) {
  std::string expected = testing::build_id_in_memory(*program_);
  ASSERT_FALSE(expected.empty()) << "the test executable was linked without --build-id";
  EXPECT_EQ(file_->build_id(), expected);
}

TEST_F(SelfElfTest, FunctionListsAreSortedAndDeduplicated) {
  auto functions = file_->functions();
  ASSERT_FALSE(functions.empty());
  for (size_t i = 1; i < functions.size(); ++i) {
    const Symbol &a = functions[i - 1];
    const Symbol &b = functions[i];
    ASSERT_TRUE(a.address < b.address || (a.address == b.address && a.name < b.name))
        << a.name << " / " << b.name;
  }
  for (const Symbol &f : functions) {
    ASSERT_TRUE(f.is_function);
    ASSERT_NE(f.address, 0u);
  }
  auto all = file_->all_symbols();
  EXPECT_GT(all.size(), functions.size());
  for (size_t i = 1; i < all.size(); ++i) {
    ASSERT_TRUE(all[i - 1].address < all[i].address ||
                (all[i - 1].address == all[i].address && all[i - 1].name < all[i].name));
  }
  // main is in .symtab, and in .dynsym too when exported: listed once either way.
  EXPECT_EQ(std::count_if(functions.begin(), functions.end(),
                          [](const Symbol &s) { return s.name == "main"; }),
            1);
}

TEST_F(SelfElfTest, VersionSuffixesOfSymtabAreStripped) {
  // std::cerr is copy-relocated into this executable: .symtab names it "_ZSt4cerr@GLIBCXX_3.4".
  const Symbol *cerr_symbol = file_->find_symbol("_ZSt4cerr");
  ASSERT_NE(cerr_symbol, nullptr);
  EXPECT_TRUE(cerr_symbol->is_default_version);
  for (const Symbol &s : file_->all_symbols()) {
    ASSERT_EQ(s.name.find('@'), std::string::npos) << s.name;
  }
}

TEST_F(SelfElfTest, MatchFunctionsWithWildcards) {
  auto names = [](const std::vector<const Symbol *> &symbols) {
    std::vector<std::string> result;
    for (const Symbol *s : symbols)
      result.push_back(s->name);
    return result;
  };
  EXPECT_EQ(names(file_->match_functions("dprobe_elf_test_*")),
            (std::vector<std::string>{"dprobe_elf_test_add", "dprobe_elf_test_alias",
                                      "dprobe_elf_test_work"}));
  EXPECT_EQ(names(file_->match_functions("dprobe_elf_test_?dd")),
            (std::vector<std::string>{"dprobe_elf_test_add"}));
  EXPECT_EQ(names(file_->match_functions("dprobe_elf_test_work")),
            (std::vector<std::string>{"dprobe_elf_test_work"}));
  EXPECT_TRUE(file_->match_functions("dprobe_elf_test_label").empty());
  std::vector<const Symbol *> everything = file_->match_functions("*");
  EXPECT_TRUE(std::is_sorted(everything.begin(), everything.end(),
                             [](const Symbol *a, const Symbol *b) { return a->name < b->name; }));
  EXPECT_TRUE(std::adjacent_find(everything.begin(), everything.end(),
                                 [](const Symbol *a, const Symbol *b) {
                                   return a->name == b->name;
                                 }) == everything.end());
}

TEST_F(SelfElfTest, ResolveFunction) {
  auto work = file_->resolve_function("dprobe_elf_test_work");
  ASSERT_TRUE(work.has_value()) << work.error().text();
  EXPECT_EQ(runtime(work->address), address_of(&dprobe_elf_test_work));

  auto typo = file_->resolve_function("dprobe_elf_test_wrk");
  ASSERT_FALSE(typo.has_value());
  EXPECT_EQ(typo.error().text(), "/proc/self/exe: no function 'dprobe_elf_test_wrk' (did you mean "
                                 "'dprobe_elf_test_work'?)");
  EXPECT_EQ(typo.error().errno_value, 0);

  auto far = file_->resolve_function("zzzzzzzzzzzzzzzzzzzzzzzz");
  ASSERT_FALSE(far.has_value());
  EXPECT_EQ(far.error().text(), "/proc/self/exe: no function 'zzzzzzzzzzzzzzzzzzzzzzzz'");

  auto data = file_->resolve_function("dprobe_elf_test_counter");
  ASSERT_FALSE(data.has_value());
  EXPECT_EQ(data.error().text(), "/proc/self/exe: 'dprobe_elf_test_counter' is not a function");
}

} // namespace
} // namespace dprobe::elf
