#include "process/maps.h"

#include <sys/sysmacros.h>

#include <gtest/gtest.h>

namespace dprobe::process {
namespace {

TEST(ParseMaps, FileBackedLine) {
  auto maps = parse_maps(
      "55d0c8a00000-55d0c8a21000 r-xp 00001000 fd:01 1234567                    /usr/bin/foo\n");
  ASSERT_TRUE(maps) << maps.error().text();
  ASSERT_EQ(maps->size(), 1u);
  const Mapping& m = maps->front();
  EXPECT_EQ(m.start, 0x55d0c8a00000u);
  EXPECT_EQ(m.end, 0x55d0c8a21000u);
  EXPECT_TRUE(m.readable);
  EXPECT_FALSE(m.writable);
  EXPECT_TRUE(m.executable);
  EXPECT_TRUE(m.is_private);
  EXPECT_EQ(m.offset, 0x1000u);
  EXPECT_EQ(m.device, makedev(0xfd, 0x01));
  EXPECT_EQ(m.inode, 1234567u);
  EXPECT_EQ(m.path, "/usr/bin/foo");
  EXPECT_FALSE(m.deleted);
  EXPECT_TRUE(m.contains(0x55d0c8a00000u));
  EXPECT_FALSE(m.contains(0x55d0c8a21000u));
}

TEST(ParseMaps, AnonymousPseudoSharedAndDeleted) {
  auto maps = parse_maps(
      "7f0000000000-7f0000001000 rw-p 00000000 00:00 0 \n"
      "7ffc12345000-7ffc12366000 rw-p 00000000 00:00 0                          [stack]\n"
      "7f1000000000-7f1000002000 rw-s 00000000 00:05 42                         /memfd:dprobe "
      "(deleted)\n"
      "7f2000000000-7f2000001000 r--p 00000000 08:11 99                         /tmp/dir with "
      "spaces/lib.so\n"
      "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n");
  ASSERT_TRUE(maps) << maps.error().text();
  ASSERT_EQ(maps->size(), 5u);
  EXPECT_EQ((*maps)[0].path, "");
  EXPECT_EQ((*maps)[0].inode, 0u);
  EXPECT_EQ((*maps)[1].path, "[stack]");
  EXPECT_FALSE((*maps)[2].is_private);
  EXPECT_TRUE((*maps)[2].deleted);
  EXPECT_EQ((*maps)[2].path, "/memfd:dprobe");
  EXPECT_EQ((*maps)[2].device, makedev(0, 5));
  EXPECT_EQ((*maps)[3].path, "/tmp/dir with spaces/lib.so");
  EXPECT_EQ((*maps)[3].device, makedev(8, 0x11));
  EXPECT_FALSE((*maps)[4].readable);
  EXPECT_TRUE((*maps)[4].executable);
  EXPECT_EQ((*maps)[4].start, 0xffffffffff600000u);
}

TEST(ParseMaps, LargeMinorNumber) {
  auto maps = parse_maps("1000-2000 r--p 00000000 103:1a2 7 /x\n");
  ASSERT_TRUE(maps);
  EXPECT_EQ(maps->front().device, makedev(0x103, 0x1a2));
}

TEST(ParseMaps, EmptyText) {
  auto maps = parse_maps("");
  ASSERT_TRUE(maps);
  EXPECT_TRUE(maps->empty());
}

TEST(ParseMaps, ErrorsNameTheLine) {
  auto maps = parse_maps("1000-2000 r--p 00000000 00:00 0\n1000 r--p 0 00:00 0\n");
  ASSERT_FALSE(maps);
  EXPECT_EQ(maps.error().text(), "maps line 2: bad address range: '1000 r--p 0 00:00 0'");
  maps = parse_maps("1000-2000 rq-p 00000000 00:00 0\n");
  ASSERT_FALSE(maps);
  EXPECT_EQ(maps.error().text(), "maps line 1: bad permissions: '1000-2000 rq-p 00000000 00:00 0'");
  maps = parse_maps("1000-2000 r--p 00000000 0000 0\n");
  ASSERT_FALSE(maps);
  EXPECT_EQ(maps.error().text(), "maps line 1: bad device: '1000-2000 r--p 00000000 0000 0'");
  maps = parse_maps("2000-1000 r--p 00000000 00:00 0\n");
  ASSERT_FALSE(maps);
}

TEST(ReadMaps, OwnProcessHasItsStack) {
  auto maps = read_maps(::getpid());
  ASSERT_TRUE(maps) << maps.error().text();
  bool stack = false;
  for (const auto& m : *maps)
    stack |= m.path == "[stack]";
  EXPECT_TRUE(stack);
  auto missing = read_maps_file("/nonexistent/maps");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().text(), "/nonexistent/maps: No such file or directory");
}

} // namespace
} // namespace dprobe::process
