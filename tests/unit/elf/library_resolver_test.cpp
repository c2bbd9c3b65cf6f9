#include "elf/library_resolver.h"

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "ld_cache_builder.h"
#include "self_image.h"

namespace dprobe::elf {
namespace {

namespace fs = std::filesystem;

TEST(AbsolutePath, FoldsAgainstTheWorkingDirectory) {
  EXPECT_EQ(absolute_path("./prog", "/tmp/work"), "/tmp/work/prog");
  EXPECT_EQ(absolute_path("../a/./b", "/tmp/work"), "/tmp/a/b");
  EXPECT_EQ(absolute_path("prog", "/tmp/work/"), "/tmp/work/prog");
  EXPECT_EQ(absolute_path("/usr/bin/../lib/x", "/tmp/work"), "/usr/lib/x");
  EXPECT_EQ(absolute_path("/lib/x86_64-linux-gnu//libc.so.6", "/"),
            "/lib/x86_64-linux-gnu/libc.so.6");
}

TEST(LibraryNames, MappedFileRuleIsBccs) {
  EXPECT_TRUE(is_mapped_library("libc", "libc.so.6"));
  EXPECT_TRUE(is_mapped_library("libc", "libc-2.31.so"));
  EXPECT_TRUE(is_mapped_library("libpython3", "libpython3.11.so.1.0"));
  EXPECT_TRUE(is_mapped_library("libc.so.6", "libc.so.6"));
  EXPECT_FALSE(is_mapped_library("libc", "libcrypt.so.1"));
  EXPECT_FALSE(is_mapped_library("libc", "libc-client.a"));
  EXPECT_FALSE(is_mapped_library("libc", "libc.a"));
  EXPECT_FALSE(is_mapped_library("c", "libc.so.6"));
}

TEST(LibraryNames, CacheAndDirectoryRuleWantsNameDotSo) {
  EXPECT_TRUE(is_library_file("libc", "libc.so.6"));
  EXPECT_TRUE(is_library_file("libc", "libc.so"));
  EXPECT_TRUE(is_library_file("libstdc++", "libstdc++.so.6"));
  EXPECT_TRUE(is_library_file("libc.so.6", "libc.so.6"));
  EXPECT_TRUE(is_library_file("ld-linux-x86-64", "ld-linux-x86-64.so.2"));
  EXPECT_FALSE(is_library_file("libc", "libc-2.31.so"));
  EXPECT_FALSE(is_library_file("libc", "libcrypt.so.1"));
  EXPECT_FALSE(is_library_file("libc.so", "libc.so.6"));
  EXPECT_FALSE(is_library_file("c", "libc.so.6"));
}

constexpr std::string_view kMaps =
    "55d0c0de0000-55d0c0de1000 r--p 00000000 fd:01 1234                       /usr/bin/prog\n"
    "7f0000000000-7f0000021000 rw-p 00000000 00:00 0 \n"
    "7f0100000000-7f0100021000 rw-p 00000000 00:00 0\n"
    "7f1000000000-7f1000028000 r--p 00000000 fd:01 2222       /opt/my libs/libfoo.so.1 (deleted)\n"
    "7f1100000000-7f1100028000 r--p 00000000 fd:01 2223       /opt/my libs/libfoo.so.2\n"
    "7f1200000000-7f1200028000 r-xp 00000000 fd:01 2224       /opt/libfoo.so.3\n"
    "7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0                          [vdso]";

TEST(LibraryNames, FirstMatchingMappedFile) {
  EXPECT_EQ(find_library_in_maps(kMaps, "libfoo"), "/opt/my libs/libfoo.so.2");
  EXPECT_EQ(find_library_in_maps(kMaps, "libfoo.so.3"), "/opt/libfoo.so.3");
  EXPECT_EQ(find_library_in_maps(kMaps, "libfo"), std::nullopt);
  EXPECT_EQ(find_library_in_maps(kMaps, "[vdso]"), std::nullopt);
  EXPECT_EQ(find_library_in_maps("", "libfoo"), std::nullopt);
}

TEST(LibraryNames, CacheEntriesForThisAbiInCacheOrder) {
  std::vector<LdCacheEntry> entries = {
      {"libfoo.so.2", "/lib32/libfoo.so.2", 0x0003, 0},
      {"libfoo.so.2", "/hw/libfoo.so.2", 0x0303, kLdCacheHwcapExtension},
      {"libfoo.so.2", "/lib/libfoo.so.2", 0x0303, 0},
      {"libfoobar.so.1", "/lib/libfoobar.so.1", 0x0303, 0},
      {"libfoo.so", "/lib/libfoo.so", 0x0303, 0},
  };
  EXPECT_EQ(libraries_in_cache(entries, "libfoo"),
            (std::vector<std::string>{"/lib/libfoo.so.2", "/lib/libfoo.so"}));
  EXPECT_EQ(libraries_in_cache(entries, "libfoo.so"), (std::vector<std::string>{"/lib/libfoo.so"}));
  EXPECT_TRUE(libraries_in_cache(entries, "foo").empty());
}

// A fake system: /proc/42/maps, an ld.so.cache, two library directories, a PATH directory and
// a working directory, under one temporary root.
class ResolveProbePathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/dprobe-elf-resolver-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
    for (const char* dir : {"proc/42", "lib1", "lib2", "bin", "work", "opt"})
      fs::create_directories(root_ + "/" + dir);
    search_.proc_root = root_ + "/proc";
    search_.ld_so_cache = root_ + "/ld.so.cache";
    search_.library_dirs = {root_ + "/lib1", root_ + "/lib2"};
    search_.program_path = "::" + root_ + "/nowhere:" + root_ + "/bin";
    cwd_ = root_ + "/work";

    elf("lib1/libc.so.6");
    write("lib1/libc.so", "/* GNU ld script */\nGROUP ( libc.so.6 )\n");
    write("lib1/libc.so.7", "not ELF, and the highest version\n");
    elf("lib2/libz.so.1");
    elf("lib2/libz.so.1.2.13");
    elf("lib2/libz.so.1.2.9");
    elf("opt/libmapped.so.1");
    elf("lib2/libmapped.so.1");
    elf("opt/libcached.so.4");
    elf("lib2/libcached.so.4");
    elf("lib2/libstale.so.1");
    elf("bin/tool");
    elf("work/prog");
    elf("work/libwork");
    write("bin/notelf", "#!/bin/sh\n");
    std::vector<LdCacheEntry> cache = {
        {"libstale.so.1", root_ + "/gone/libstale.so.1", 0x0303, 0},
        {"libcached.so.4", root_ + "/opt/libcached.so.4", 0x0303, 0},
        {"libmapped.so.1", root_ + "/lib2/libmapped.so.1", 0x0303, 0},
        {"libc.so.6", root_ + "/lib1/libc.so.6", 0x0303, 0},
    };
    std::vector<uint8_t> image = testing::build_ld_cache(cache);
    write("ld.so.cache", std::string(image.begin(), image.end()));
    write("proc/42/maps", "55d0c0de0000-55d0c0de1000 r--p 00000000 fd:01 1234   " + root_ +
                              "/work/prog\n" +
                              "7f1100000000-7f1100028000 r--p 00000000 fd:01 2223   " + root_ +
                              "/opt/libmapped.so.1\n");
  }
  void TearDown() override {
    if (!root_.empty()) fs::remove_all(root_);
  }

  void write(const std::string& relative, const std::string& text) {
    std::ofstream(root_ + "/" + relative, std::ios::binary) << text;
  }
  void elf(const std::string& relative) {
    write(relative, std::string("\x7f"
                                "ELF\2\1\1\0",
                                8));
  }

  Result<std::string> resolve(std::string_view written, std::optional<pid_t> pid = std::nullopt) {
    return resolve_probe_path(written, pid, cwd_, search_);
  }

  std::string root_;
  std::string cwd_;
  LibrarySearch search_;
};

TEST_F(ResolveProbePathTest, PathsWithSlashAreMadeAbsolute) {
  EXPECT_EQ(resolve("./prog"), root_ + "/work/prog");
  EXPECT_EQ(resolve("../bin/notelf"), root_ + "/bin/notelf"); // any existing file
  EXPECT_EQ(resolve(root_ + "/opt/./libcached.so.4"), root_ + "/opt/libcached.so.4");
  auto missing = resolve("./missing");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().text(), root_ + "/work/missing: No such file or directory");
}

TEST_F(ResolveProbePathTest, MappedLibraryOfThePidComesFirst) {
  EXPECT_EQ(resolve("libmapped", 42), root_ + "/opt/libmapped.so.1");
  EXPECT_EQ(resolve("libmapped"), root_ + "/lib2/libmapped.so.1");     // no pid: the cache
  EXPECT_EQ(resolve("libmapped", 43), root_ + "/lib2/libmapped.so.1"); // no such process
}

TEST_F(ResolveProbePathTest, CacheThenDirectories) {
  EXPECT_EQ(resolve("libcached"), root_ + "/opt/libcached.so.4");
  EXPECT_EQ(resolve("libcached.so.4"), root_ + "/opt/libcached.so.4");
  // The cache names a file that is gone: the directories still find it.
  EXPECT_EQ(resolve("libstale"), root_ + "/lib2/libstale.so.1");
  // Highest version, as ldconfig would order it.
  EXPECT_EQ(resolve("libz"), root_ + "/lib2/libz.so.1.2.13");
  EXPECT_EQ(resolve("libz.so.1"), root_ + "/lib2/libz.so.1");
}

TEST_F(ResolveProbePathTest, LinkerScriptsAreNotLibraries) {
  search_.ld_so_cache = root_ + "/no-cache";
  EXPECT_EQ(resolve("libc"), root_ + "/lib1/libc.so.6");
}

TEST_F(ResolveProbePathTest, NoLibPrefixIsAdded) {
  auto c = resolve("c");
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().text(),
            "no program or library 'c' found (searched the current directory, PATH, " + root_ +
                "/ld.so.cache and the default library directories)");
}

TEST_F(ResolveProbePathTest, ProgramsInTheWorkingDirectoryThenPath) {
  EXPECT_EQ(resolve("prog"), root_ + "/work/prog");
  EXPECT_EQ(resolve("tool"), root_ + "/bin/tool");
  EXPECT_EQ(resolve("libwork"), root_ + "/work/libwork"); // after the library search
  EXPECT_FALSE(resolve("notelf").has_value());
}

TEST_F(ResolveProbePathTest, ErrorsSayWhereTheyLooked) {
  auto lib = resolve("libnothing", 42);
  ASSERT_FALSE(lib.has_value());
  EXPECT_EQ(lib.error().text(), "no library 'libnothing' found (searched " + root_ +
                                    "/proc/42/maps, " + root_ +
                                    "/ld.so.cache, the default library directories, the current "
                                    "directory and PATH)");
  auto lib_no_pid = resolve("libnothing");
  ASSERT_FALSE(lib_no_pid.has_value());
  EXPECT_EQ(lib_no_pid.error().text(),
            "no library 'libnothing' found (searched " + root_ +
                "/ld.so.cache, the default library directories, the current directory and PATH)");
  auto program = resolve("nothing", 42);
  ASSERT_FALSE(program.has_value());
  EXPECT_EQ(program.error().text(),
            "no program or library 'nothing' found (searched the current directory, PATH, " +
                root_ + "/proc/42/maps, " + root_ +
                "/ld.so.cache and the default library directories)");
  EXPECT_EQ(resolve("").error().text(), "empty file name in probe");
}

TEST(ResolveProbePathSystem, LibcByNameIsTheLoadedLibc) {
  auto libc = testing::loaded_object_named("libc.so.6");
  ASSERT_TRUE(libc.has_value());
  struct stat loaded {};
  ASSERT_EQ(::stat(libc->path.c_str(), &loaded), 0);

  for (std::optional<pid_t> pid : {std::optional<pid_t>(), std::optional<pid_t>(::getpid())}) {
    auto path = resolve_probe_path("libc", pid, "/");
    ASSERT_TRUE(path.has_value()) << path.error().text();
    struct stat found {};
    ASSERT_EQ(::stat(path->c_str(), &found), 0) << *path;
    EXPECT_EQ(found.st_ino, loaded.st_ino) << *path;
    EXPECT_EQ(fs::path(*path).filename(), "libc.so.6");
  }
}

TEST(ResolveProbePathSystem, WithAPidTheNameIsTheOneInMaps) {
  std::ifstream maps("/proc/self/maps");
  std::string text((std::istreambuf_iterator<char>(maps)), std::istreambuf_iterator<char>());
  auto path = resolve_probe_path("libc", ::getpid(), "/");
  ASSERT_TRUE(path.has_value()) << path.error().text();
  EXPECT_NE(text.find(" " + *path + "\n"), std::string::npos) << *path;
}

} // namespace
} // namespace dprobe::elf
