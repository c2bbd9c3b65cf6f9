#include "elf/load_segments.h"

#include <gtest/gtest.h>

#include <array>

namespace dprobe::elf {
namespace {

// A classic non-separate-code layout: text ends and data begins in the same file page.
constexpr std::array<LoadSegment, 2> kShared{{
    {.vaddr = 0x400000,
     .memsz = 0x1234,
     .file_offset = 0,
     .filesz = 0x1234,
     .readable = true,
     .executable = true},
    {.vaddr = 0x601e10,
     .memsz = 0x300,
     .file_offset = 0x1e10,
     .filesz = 0x200,
     .readable = true,
     .writable = true},
}};

TEST(LoadSegments, LookupCoversOnlyTheFileBackedPart) {
  EXPECT_EQ(segment_for_vaddr(kShared, 0x400000), &kShared[0]);
  EXPECT_EQ(segment_for_vaddr(kShared, 0x401233), &kShared[0]);
  EXPECT_EQ(segment_for_vaddr(kShared, 0x401234), nullptr);
  EXPECT_EQ(segment_for_vaddr(kShared, 0x60200f), &kShared[1]);
  EXPECT_EQ(segment_for_vaddr(kShared, 0x602010), nullptr); // .bss
  EXPECT_EQ(segment_for_file_offset(kShared, 0x1233), &kShared[0]);
  EXPECT_EQ(segment_for_file_offset(kShared, 0x1234), nullptr);
  EXPECT_EQ(segment_for_file_offset(kShared, 0x1e10), &kShared[1]);
  EXPECT_EQ(segment_for_file_offset(kShared, 0x2010), nullptr);
}

TEST(LoadSegments, BiasOfEachMappingEvenWhenAPageIsShared) {
  // Loaded at bias 0x10000000: text mapped from offset 0, data from offset 0x1000 (which
  // also lies inside text's file range).
  constexpr uint64_t kBias = 0x10000000;
  EXPECT_EQ(load_bias_for_mapping(kShared, kBias + 0x400000, 0), kBias);
  EXPECT_EQ(load_bias_for_mapping(kShared, kBias + 0x601000, 0x1000), kBias);
  EXPECT_EQ(load_bias_for_mapping(kShared, kBias + 0x400000, 0x5000), std::nullopt);
}

TEST(LoadSegments, BiasOfAMappingInTheMiddleOfASegment) {
  constexpr std::array<LoadSegment, 1> kText{{
      {.vaddr = 0x1000, .memsz = 0x5000, .file_offset = 0x1000, .filesz = 0x5000},
  }};
  // e.g. after an mprotect split the segment into two lines of /proc/PID/maps.
  EXPECT_EQ(load_bias_for_mapping(kText, 0x7f0000003000, 0x3000), 0x7f0000000000u);
}

} // namespace
} // namespace dprobe::elf
