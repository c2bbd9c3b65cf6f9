#include "elf/ld_so_cache.h"

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "ld_cache_builder.h"
#include "self_image.h"

namespace dprobe::elf {
namespace {

const std::vector<LdCacheEntry> kEntries = {
    {"libz.so.1", "/lib/x86_64-linux-gnu/libz.so.1", 0x0303, 0},
    {"libz.so.1", "/lib32/libz.so.1", 0x0003, 0},
    {"libfast.so.2", "/usr/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3/libfast.so.2", 0x0303,
     kLdCacheHwcapExtension | 1},
    {"libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6", 0x0303, 0},
};

TEST(LdSoCache, ParsesTheNewFormat) {
  std::vector<uint8_t> image = testing::build_ld_cache(kEntries);
  auto parsed = parse_ld_so_cache(image);
  ASSERT_TRUE(parsed.has_value()) << parsed.error().text();
  EXPECT_EQ(*parsed, kEntries);
}

TEST(LdSoCache, ParsesTheNewPartOfTheCompatFormat) {
  std::vector<uint8_t> image = testing::build_ld_cache(kEntries, /*compat=*/true);
  ASSERT_EQ(std::memcmp(image.data(), "ld.so-1.7.0", 11), 0);
  auto parsed = parse_ld_so_cache(image);
  ASSERT_TRUE(parsed.has_value()) << parsed.error().text();
  EXPECT_EQ(*parsed, kEntries);
}

TEST(LdSoCache, EmptyCache) {
  auto parsed = parse_ld_so_cache(testing::build_ld_cache({}));
  ASSERT_TRUE(parsed.has_value()) << parsed.error().text();
  EXPECT_TRUE(parsed->empty());
}

TEST(LdSoCache, FlagsForThisAbi) {
  EXPECT_TRUE(is_x86_64_libc6(0x0303));
  EXPECT_FALSE(is_x86_64_libc6(0x0003)); // i386
  EXPECT_FALSE(is_x86_64_libc6(0x0803)); // x32
  EXPECT_FALSE(is_x86_64_libc6(0x0301)); // libc5
  EXPECT_FALSE(is_x86_64_libc6(0x0a03)); // aarch64
}

TEST(LdSoCache, RejectsMalformedImages) {
  std::vector<uint8_t> good = testing::build_ld_cache(kEntries);

  std::vector<uint8_t> bad_magic = good;
  bad_magic[0] = 'G';
  EXPECT_EQ(parse_ld_so_cache(bad_magic).error().text(), "not an ld.so.cache file (bad magic)");

  std::vector<uint8_t> header_only(good.begin(), good.begin() + 40);
  EXPECT_EQ(parse_ld_so_cache(header_only).error().text(), "ld.so.cache truncated in its header");

  std::vector<uint8_t> too_many = good;
  too_many[20] = 200;
  EXPECT_EQ(parse_ld_so_cache(too_many).error().text(),
            "ld.so.cache truncated: 200 entries do not fit in " + std::to_string(good.size()) +
                " bytes");

  std::vector<uint8_t> wild_key = good;
  uint32_t far = 0x7fffff00;
  std::memcpy(wild_key.data() + 48 + 24 + 4, &far, 4); // entry 1's key
  EXPECT_EQ(parse_ld_so_cache(wild_key).error().text(),
            "ld.so.cache entry 1: key offset 0x7fffff00 is outside the file");

  std::vector<uint8_t> unterminated = good;
  unterminated.pop_back(); // the NUL of the last value
  EXPECT_EQ(parse_ld_so_cache(unterminated).error().text(),
            "ld.so.cache entry 3: value at 0x" + fmt::format("{:x}", good.size() - 32) +
                " runs past the end of the file");

  std::vector<uint8_t> big_endian = good;
  big_endian[28] = 3;
  EXPECT_EQ(parse_ld_so_cache(big_endian).error().text(), "ld.so.cache is big-endian");

  EXPECT_EQ(parse_ld_so_cache({}).error().text(), "not an ld.so.cache file (bad magic)");
}

TEST(LdSoCache, ReadNamesTheFile) {
  auto missing = read_ld_so_cache("/nonexistent/ld.so.cache");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().text(), "/nonexistent/ld.so.cache: No such file or directory");
  auto not_cache = read_ld_so_cache("/proc/self/exe");
  ASSERT_FALSE(not_cache.has_value());
  EXPECT_EQ(not_cache.error().text(), "/proc/self/exe: not an ld.so.cache file (bad magic)");
}

TEST(LdSoCache, SystemCacheNamesTheLoadedLibc) {
  auto entries = read_ld_so_cache("/etc/ld.so.cache");
  ASSERT_TRUE(entries.has_value()) << entries.error().text();
  auto libc = testing::loaded_object_named("libc.so.6");
  ASSERT_TRUE(libc.has_value());
  struct stat loaded {};
  ASSERT_EQ(::stat(libc->path.c_str(), &loaded), 0);

  const LdCacheEntry* found = nullptr;
  for (const LdCacheEntry& e : *entries) {
    if (e.key == "libc.so.6" && is_x86_64_libc6(e.flags)) {
      found = &e;
      break;
    }
  }
  ASSERT_NE(found, nullptr);
  struct stat cached {};
  ASSERT_EQ(::stat(found->value.c_str(), &cached), 0) << found->value;
  EXPECT_EQ(cached.st_ino, loaded.st_ino);
  EXPECT_EQ(cached.st_dev, loaded.st_dev);
}

// ldconfig -p prints the cache in file order: "\tKEY (FLAGS) => VALUE".
TEST(LdSoCache, SystemCacheAgreesWithLdconfig) {
  if (::access("/sbin/ldconfig", X_OK) != 0) GTEST_SKIP() << "no /sbin/ldconfig";
  auto entries = read_ld_so_cache("/etc/ld.so.cache");
  ASSERT_TRUE(entries.has_value()) << entries.error().text();
  FILE* pipe = ::popen("/sbin/ldconfig -p 2>/dev/null", "r");
  ASSERT_NE(pipe, nullptr);
  std::vector<LdCacheEntry> listed;
  std::vector<bool> listed_x86_64;
  char line[4096];
  while (std::fgets(line, sizeof(line), pipe) != nullptr) {
    std::string_view text(line);
    if (!text.starts_with('\t')) continue;
    if (text.ends_with('\n')) text.remove_suffix(1);
    size_t open = text.find(" (");
    size_t arrow = text.find(") => ");
    ASSERT_NE(open, std::string_view::npos) << text;
    ASSERT_NE(arrow, std::string_view::npos) << text;
    std::string_view flags = text.substr(open + 2, arrow - open - 2);
    listed.push_back(
        {std::string(text.substr(1, open - 1)), std::string(text.substr(arrow + 5)), 0, 0});
    listed_x86_64.push_back(flags == "libc6,x86-64" || flags.starts_with("libc6,x86-64,"));
  }
  ::pclose(pipe);
  ASSERT_EQ(entries->size(), listed.size());
  ASSERT_GT(listed.size(), 10u);
  for (size_t i = 0; i < listed.size(); ++i) {
    EXPECT_EQ((*entries)[i].key, listed[i].key) << i;
    EXPECT_EQ((*entries)[i].value, listed[i].value) << i;
    EXPECT_EQ(is_x86_64_libc6((*entries)[i].flags), listed_x86_64[i]) << listed[i].key;
  }
}

} // namespace
} // namespace dprobe::elf
