#include "elf/symbolizer.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <climits>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "elf/debug_file.h"
#include "self_image.h"

// Hand-written so that the size is known exactly:
//   dprobe_symbolizer_test::leaf(int):  8d 47 01  lea 0x1(%rdi),%eax
//                                       c3        ret
//   dprobe_symbolizer_test_unsized: a global label without type or size, after it
asm(R"(
  .text
  .globl _ZN22dprobe_symbolizer_test4leafEi
  .type _ZN22dprobe_symbolizer_test4leafEi, @function
_ZN22dprobe_symbolizer_test4leafEi:
  leal 1(%rdi), %eax
  ret
  .size _ZN22dprobe_symbolizer_test4leafEi, .-_ZN22dprobe_symbolizer_test4leafEi
  .globl dprobe_symbolizer_test_unsized
dprobe_symbolizer_test_unsized:
  nop
  ret
)");

namespace dprobe_symbolizer_test {
int leaf(int x);
}
extern "C" {
void dprobe_symbolizer_test_unsized();
__attribute__((used)) int dprobe_symbolizer_test_data[4] = {1, 2, 3, 4};
}

namespace dprobe::elf {
namespace {

namespace fs = std::filesystem;

constexpr const char* kLeafName = "dprobe_symbolizer_test::leaf(int)";
constexpr const char* kLeafRaw = "_ZN22dprobe_symbolizer_test4leafEi";

uint64_t address_of(const void* p) {
  return reinterpret_cast<uint64_t>(p);
}
uint64_t leaf_address() {
  return address_of(reinterpret_cast<const void*>(&dprobe_symbolizer_test::leaf));
}

std::vector<MappedFile> self_mappings() {
  std::vector<MappedFile> mappings;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    unsigned long start = 0, end = 0, offset = 0, inode = 0;
    char perms[5] = {};
    int path_at = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx %4s %lx %*s %lu %n", &start, &end, perms, &offset,
                    &inode, &path_at) < 5) {
      continue;
    }
    std::string path = line.substr(static_cast<size_t>(path_at));
    if (!path.starts_with('/')) continue;
    mappings.push_back({start, end, offset, path, perms[2] == 'x', static_cast<ino_t>(inode)});
  }
  return mappings;
}

// The path of a mapping holding `address`, as /proc/self/maps spells it.
std::string mapped_path(uint64_t address) {
  for (const MappedFile& m : self_mappings()) {
    if (address >= m.start && address < m.end) return m.path;
  }
  return "";
}

TEST(Demangle, CxxNamesOnly) {
  EXPECT_EQ(demangle("_ZN2ns6Widget4leafEi"), "ns::Widget::leaf(int)");
  EXPECT_EQ(demangle("_Z6middlei"), "middle(int)");
  EXPECT_EQ(demangle("_ZL10local_funci"), "local_func(int)");
  EXPECT_EQ(demangle("main"), "main");
  EXPECT_EQ(demangle("_Zgarbage("), "_Zgarbage(");
  EXPECT_EQ(demangle("Z6middlei"), "Z6middlei");
  EXPECT_EQ(demangle(""), "");
}

class SelfSymbolizeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto opened = ElfFile::open("/proc/self/exe");
    ASSERT_TRUE(opened.has_value()) << opened.error().text();
    file_ = opened->release();
    bias_ = testing::main_program().bias;
  }
  static void TearDownTestSuite() { delete file_; }

  static ElfFile* file_;
  static uint64_t bias_;
};

ElfFile* SelfSymbolizeTest::file_ = nullptr;
uint64_t SelfSymbolizeTest::bias_ = 0;

TEST_F(SelfSymbolizeTest, NamesAndOffsetsInAFunction) {
  uint64_t leaf = leaf_address() - bias_;
  EXPECT_EQ(symbolize(*file_, leaf), (SymbolizedAddress{kLeafName, kLeafRaw, 0}));
  EXPECT_EQ(symbolize(*file_, leaf + 3), (SymbolizedAddress{kLeafName, kLeafRaw, 3}));
}

TEST_F(SelfSymbolizeTest, SizeZeroSymbolsNameNothing) {
  uint64_t label = address_of(reinterpret_cast<const void*>(&dprobe_symbolizer_test_unsized));
  EXPECT_EQ(label, leaf_address() + 4);
  EXPECT_EQ(symbolize(*file_, label - bias_), std::nullopt);
  EXPECT_EQ(symbolize(*file_, label - bias_ + 1), std::nullopt);
}

TEST_F(SelfSymbolizeTest, DataSymbolsCountInAFile) {
  uint64_t data = address_of(&dprobe_symbolizer_test_data[1]) - bias_;
  EXPECT_EQ(symbolize(*file_, data + 1),
            (SymbolizedAddress{"dprobe_symbolizer_test_data", "dprobe_symbolizer_test_data", 5}));
}

class SelfProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    exe_ = mapped_path(leaf_address());
    ASSERT_FALSE(exe_.empty());
  }
  std::string exe_;
};

TEST_F(SelfProcessTest, UsymFormats) {
  ProcessSymbolizer symbolizer(self_mappings());
  uint64_t leaf = leaf_address();
  EXPECT_EQ(symbolizer.usym(leaf), kLeafName);
  EXPECT_EQ(symbolizer.usym(leaf + 3, true), std::string(kLeafName) + "+3");
  EXPECT_EQ(symbolizer.usym(leaf + 3, true, true), std::string(kLeafName) + "+3 (" + exe_ + ")");
  EXPECT_EQ(symbolizer.usym(leaf + 3, false, true), std::string(kLeafName) + " (" + exe_ + ")");
  auto resolved = symbolizer.resolve(leaf + 2);
  ASSERT_TRUE(resolved.has_value());
  EXPECT_EQ(resolved->symbol, (SymbolizedAddress{kLeafName, kLeafRaw, 2}));
  EXPECT_EQ(resolved->module, exe_);
}

TEST_F(SelfProcessTest, UnknownAddressesPrintAsBpftraceDoes) {
  ProcessSymbolizer symbolizer(self_mappings());
  EXPECT_EQ(symbolizer.usym(0x1000), "0x1000");
  EXPECT_EQ(symbolizer.usym(0x1000, true), "0x1000");
  EXPECT_EQ(symbolizer.usym(0x1000, true, true), "0x1000 ([unknown])");
  EXPECT_EQ(symbolizer.usym(0), "0");
  // In an executable mapping, but no sized symbol covers it.
  uint64_t label = address_of(reinterpret_cast<const void*>(&dprobe_symbolizer_test_unsized));
  EXPECT_EQ(symbolizer.usym(label, true), fmt::format("{:#x}", label));
  // A data symbol covers it, but the mapping is not executable.
  uint64_t data = address_of(&dprobe_symbolizer_test_data[1]);
  EXPECT_EQ(symbolizer.usym(data, true), fmt::format("{:#x}", data));
}

TEST_F(SelfProcessTest, RawNamesWhenDemanglingIsOff) {
  ProcessSymbolizer symbolizer(self_mappings(), nullptr, /*demangle_names=*/false);
  EXPECT_EQ(symbolizer.usym(leaf_address() + 1, true), std::string(kLeafRaw) + "+1");
}

TEST_F(SelfProcessTest, UstackLayouts) {
  ProcessSymbolizer symbolizer(self_mappings());
  uint64_t leaf = leaf_address();
  std::vector<uint64_t> frames = {leaf, leaf + 3, 0x1000, 0, leaf};
  EXPECT_EQ(symbolizer.ustack(frames), "\n"
                                       "        dprobe_symbolizer_test::leaf(int)+0\n"
                                       "        dprobe_symbolizer_test::leaf(int)+3\n"
                                       "        0x1000\n");
  EXPECT_EQ(symbolizer.ustack(frames, StackMode::bpftrace, 4),
            "\n"
            "    dprobe_symbolizer_test::leaf(int)+0\n"
            "    dprobe_symbolizer_test::leaf(int)+3\n"
            "    0x1000\n");
  EXPECT_EQ(symbolizer.ustack(frames, StackMode::perf),
            fmt::format("\n"
                        "\t{:x} dprobe_symbolizer_test::leaf(int)+0 ({})\n"
                        "\t{:x} dprobe_symbolizer_test::leaf(int)+3 ({})\n"
                        "\t1000 0x1000 ([unknown])\n",
                        leaf, exe_, leaf + 3, exe_));
  EXPECT_EQ(symbolizer.ustack({}), "\n");
}

TEST_F(SelfProcessTest, LibcFunctionsByTheirMappedPath) {
  void* handle = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
  ASSERT_NE(handle, nullptr);
  void* libc_malloc = dlsym(handle, "malloc");
  dlclose(handle);
  ASSERT_NE(libc_malloc, nullptr);
  uint64_t address = address_of(libc_malloc);
  ProcessSymbolizer symbolizer(self_mappings());
  EXPECT_EQ(symbolizer.usym(address + 4, true, true), "malloc+4 (" + mapped_path(address) + ")");
}

TEST_F(SelfProcessTest, MappingsCanBeReplaced) {
  ProcessSymbolizer symbolizer({});
  EXPECT_EQ(symbolizer.usym(leaf_address()), fmt::format("{:#x}", leaf_address()));
  symbolizer.set_mappings(self_mappings());
  EXPECT_EQ(symbolizer.usym(leaf_address()), kLeafName);
}

TEST_F(SelfProcessTest, UnreadableFilesNameNothing) {
  uint64_t leaf = leaf_address();
  auto files = std::make_shared<SymbolFiles>();
  ProcessSymbolizer symbolizer({{leaf - 0x100, leaf + 0x100, 0, "/nonexistent/prog", true, 0}},
                               files);
  EXPECT_EQ(symbolizer.usym(leaf), fmt::format("{:#x}", leaf));
  const SymbolFiles::Entry& entry = files->get("/nonexistent/prog");
  EXPECT_EQ(entry.file, nullptr);
  ASSERT_TRUE(entry.error.has_value());
  EXPECT_EQ(entry.error->text(), "/nonexistent/prog: No such file or directory");
  EXPECT_EQ(&files->get("/nonexistent/prog"), &entry); // cached, not retried
}

TEST(SymbolFilesTest, OpensAgainWhenTheInodeChanges) {
  char pattern[] = "/tmp/dprobe-elf-symbolizer-XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  std::string dir = pattern;
  std::string path = dir + "/prog";
  fs::copy_file("/proc/self/exe", path);
  SymbolFiles files("");
  const SymbolFiles::Entry& first = files.get(path);
  ASSERT_NE(first.file, nullptr);
  ino_t first_inode = first.file->inode();
  EXPECT_EQ(&files.get(path, first_inode), &first);

  fs::copy_file("/proc/self/exe", dir + "/next");
  fs::rename(dir + "/next", path);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  ASSERT_NE(st.st_ino, first_inode);
  const SymbolFiles::Entry& second = files.get(path, st.st_ino);
  ASSERT_NE(second.file, nullptr);
  EXPECT_EQ(second.file->inode(), st.st_ino);
  EXPECT_EQ(files.get(path).file->inode(), st.st_ino);
  fs::remove_all(dir);
}

TEST(DebugLink, Crc32OfTheCheckString) {
  std::string_view check = "123456789";
  EXPECT_EQ(debuglink_crc32(0, {reinterpret_cast<const uint8_t*>(check.data()), check.size()}),
            0xcbf43926u);
  EXPECT_EQ(debuglink_crc32(0, {}), 0u);
}

// glibc's own symbol table is in libc6-dbg's separate debug file; bpftrace names libc frames
// such as __libc_start_call_main from it.
class LibcDebugFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto object = testing::loaded_object_named("libc.so.6");
    ASSERT_TRUE(object.has_value());
    auto opened = ElfFile::open(object->path);
    ASSERT_TRUE(opened.has_value()) << opened.error().text();
    libc_ = std::move(*opened);
    std::string id = libc_->build_id();
    ASSERT_GT(id.size(), 2u);
    debug_path_ =
        fmt::format("/usr/lib/debug/.build-id/{}/{}.debug", id.substr(0, 2), id.substr(2));
    if (::access(debug_path_.c_str(), R_OK) != 0) GTEST_SKIP() << "libc6-dbg is not installed";
  }

  std::unique_ptr<ElfFile> libc_;
  std::string debug_path_;
};

TEST_F(LibcDebugFileTest, FoundByBuildId) {
  EXPECT_EQ(find_debug_file(*libc_, "/usr/lib/debug"), debug_path_);
  EXPECT_EQ(find_debug_file(*libc_, "/nonexistent"), std::nullopt);
}

TEST_F(LibcDebugFileTest, FoundByDebuglinkWithMatchingCrc) {
  std::optional<DebugLink> link = read_debuglink(libc_->elf_handle());
  if (!link) GTEST_SKIP() << "libc has no .gnu_debuglink";
  char pattern[] = "/tmp/dprobe-elf-debugroot-XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  std::string root = pattern;
  std::string dir = fs::path(libc_->path()).parent_path().string();
  fs::create_directories(root + dir);
  std::string linked = root + dir + "/" + link->file_name;

  auto crc = file_crc32(debug_path_);
  ASSERT_TRUE(crc.has_value()) << crc.error().text();
  fs::create_symlink(debug_path_, linked);
  if (*crc == link->crc) {
    EXPECT_EQ(find_debug_file(*libc_, root), linked);
  } else {
    EXPECT_EQ(find_debug_file(*libc_, root), std::nullopt); // changed after linking (dwz)
  }
  fs::remove(linked);
  fs::create_symlink(libc_->path(), linked); // some other file: wrong CRC
  EXPECT_EQ(find_debug_file(*libc_, root), std::nullopt);
  fs::remove_all(root);
}

TEST_F(LibcDebugFileTest, LibcInternalFramesAreNamed) {
  // The outermost frames of this thread: ... main, __libc_start_call_main, ...
  void* frames[256];
  int count = ::backtrace(frames, 256);
  ASSERT_GT(count, 2);
  ProcessSymbolizer with_debug(self_mappings());
  ProcessSymbolizer without_debug(self_mappings(), std::make_shared<SymbolFiles>(""));
  bool found = false;
  for (int i = 0; i < count; ++i) {
    uint64_t address = address_of(frames[i]);
    std::string name = with_debug.usym(address, true);
    if (!name.starts_with("__libc_start_call_main+")) continue;
    found = true;
    EXPECT_GT(std::stoul(name.substr(name.find('+') + 1)), 0u);
    // .dynsym alone does not know this local function.
    EXPECT_EQ(without_debug.usym(address, true), fmt::format("{:#x}", address));
  }
  EXPECT_TRUE(found);
}

} // namespace
} // namespace dprobe::elf
