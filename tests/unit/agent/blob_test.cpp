// The embedded blob: its header, its entry points, and that it runs from read+execute pages.
#include <gtest/gtest.h>

#include <cstring>

#include "abi/agent_blob.h"
#include "agent/agent_blob.h"
#include "agent_harness.h"

namespace dprobe::agent {
namespace {

TEST(AgentBlob, HeaderNamesEntryPointsInsideTheImage) {
  const auto blob = agent_blob();
  ASSERT_GE(blob.size(), sizeof(abi::AgentBlobHeader));
  auto info = agent_blob_info();
  ASSERT_TRUE(info.has_value()) << info.error().message;
  EXPECT_EQ(info->image_size, blob.size());
  EXPECT_EQ(info->image_size % 64, 0u);
  EXPECT_LT(info->image_size, 64u * 1024) << "the agent should stay small";
  EXPECT_NE(info->dispatch_offset, info->sigtrap_offset);
  EXPECT_NE(info->sigtrap_offset, info->restorer_offset);
  EXPECT_EQ(info->region_address_offset, 48u);
  abi::AgentBlobHeader h;
  std::memcpy(&h, blob.data(), sizeof h);
  EXPECT_EQ(h.magic, abi::kAgentBlobMagic);
  EXPECT_EQ(h.version, abi::kAgentBlobVersion);
  EXPECT_EQ(h.header_size, sizeof h);
  EXPECT_EQ(h.region_address, 0u) << "the loader fills this in";
}

TEST(AgentBlob, RestorerIsRtSigreturn) {
  auto info = agent_blob_info();
  ASSERT_TRUE(info.has_value());
  const uint8_t* p = agent_blob().data() + info->restorer_offset;
  const uint8_t expected[] = {0xb8, 0x0f, 0x00, 0x00, 0x00, // mov eax, 15 (rt_sigreturn)
                              0x0f, 0x05};                  // syscall
  EXPECT_EQ(std::memcmp(p, expected, sizeof expected), 0);
}

TEST(AgentBlob, ImageForRegionPatchesOnlyTheRegionAddress) {
  const auto blob = agent_blob();
  const auto image = agent_image_for(0x7f0012345000);
  ASSERT_EQ(image.size(), blob.size());
  uint64_t address;
  std::memcpy(&address, image.data() + 48, 8);
  EXPECT_EQ(address, 0x7f0012345000u);
  size_t differing = 0;
  for (size_t i = 0; i < image.size(); ++i)
    differing += image[i] != blob[i];
  EXPECT_EQ(differing, 4u); // the non-zero bytes of the address: 00 50 34 12 00 7f
}

TEST(AgentBlob, RejectsBadHeaders) {
  auto image = std::vector<uint8_t>(agent_blob().begin(), agent_blob().end());
  EXPECT_FALSE(agent_blob_info(std::span(image).first(100)).has_value());
  image[0] ^= 1;
  EXPECT_FALSE(agent_blob_info(image).has_value());
  image[0] ^= 1;
  const uint64_t far = 1u << 30;
  std::memcpy(image.data() + offsetof(abi::AgentBlobHeader, dispatch_offset), &far, 8);
  EXPECT_FALSE(agent_blob_info(image).has_value());
}

TEST(AgentBlob, RunsFromReadExecutePagesWithStateOnlyInTheRegion) {
  // The blob's pages are mapped without write permission: any write of its own would fault.
  testing::Harness h("uprobe:/bin/true:main { @ = count(); }", testing::AgentKind::Blob);
  for (int i = 0; i < 10; ++i)
    h.hit(0);
  EXPECT_EQ(h.scalar(0), 10u);
}

} // namespace
} // namespace dprobe::agent
