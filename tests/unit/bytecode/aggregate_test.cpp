// The aggregation rules shared by the VM's hosts and the merge: bucket functions, in-place
// updates, and merges, against values bpftrace 0.17 shows for the same inputs.
#include "bytecode/aggregate.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace dprobe::bytecode {
namespace {

uint64_t u(int64_t v) {
  return static_cast<uint64_t>(v);
}

TEST(Aggregate, HistBucketsAsBpftrace) {
  EXPECT_EQ(hist_bucket(u(-1)), 0u);
  EXPECT_EQ(hist_bucket(u(INT64_MIN)), 0u);
  EXPECT_EQ(hist_bucket(0), 1u);
  EXPECT_EQ(hist_bucket(1), 2u);
  EXPECT_EQ(hist_bucket(2), 3u);
  EXPECT_EQ(hist_bucket(3), 3u);
  EXPECT_EQ(hist_bucket(4), 4u);
  EXPECT_EQ(hist_bucket(1023), 11u);
  EXPECT_EQ(hist_bucket(1024), 12u); // [1K, 2K)
  EXPECT_EQ(hist_bucket((1ull << 31) - 1), 32u);
  // bpftrace 0.17 prints hist(x << 35) for x in 1..39 as [2G, 4G): five halving steps only.
  EXPECT_EQ(hist_bucket(1ull << 35), 33u);
  EXPECT_EQ(hist_bucket(39ull << 35), 33u);
  EXPECT_EQ(hist_bucket(u(INT64_MAX)), 33u);
  EXPECT_LT(hist_bucket(u(INT64_MAX)), kHistBuckets);
}

TEST(Aggregate, LhistBucketsAsBpftrace) {
  // lhist(x, 0, 10, 3): 3 buckets inside, x == 9 and x >= 10 both in the last ("[10, ...)").
  EXPECT_EQ(lhist_buckets(0, 10, 3), 5u);
  EXPECT_EQ(lhist_bucket(u(-1), 0, 10, 3), 0u);
  EXPECT_EQ(lhist_bucket(0, 0, 10, 3), 1u);
  EXPECT_EQ(lhist_bucket(2, 0, 10, 3), 1u);
  EXPECT_EQ(lhist_bucket(3, 0, 10, 3), 2u);
  EXPECT_EQ(lhist_bucket(8, 0, 10, 3), 3u);
  EXPECT_EQ(lhist_bucket(9, 0, 10, 3), 4u);
  EXPECT_EQ(lhist_bucket(10, 0, 10, 3), 4u);
  EXPECT_EQ(lhist_bucket(1000, 0, 10, 3), 4u);
  EXPECT_EQ(lhist_bucket(20, 20, 200, 20), 1u);
  EXPECT_EQ(lhist_bucket(199, 20, 200, 20), 9u);
  EXPECT_EQ(lhist_bucket(200, 20, 200, 20), 10u);
  EXPECT_EQ(lhist_buckets(20, 200, 20), 11u);
  EXPECT_EQ(lhist_buckets(0, 10, 0), 0u);
  EXPECT_EQ(lhist_buckets(10, 10, 1), 0u);
  EXPECT_EQ(lhist_buckets(0, 100000, 1), 0u) << "too many buckets";
}

TEST(Aggregate, ValueWords) {
  EXPECT_EQ(value_words(MapValueKind::Count), 1u);
  EXPECT_EQ(value_words(MapValueKind::Min), 1u);
  EXPECT_EQ(value_words(MapValueKind::Stats), 2u);
  EXPECT_EQ(value_words(MapValueKind::Hist), kHistBuckets);
  EXPECT_EQ(value_words(MapValueKind::Lhist, 0, 100, 10), 12u);
  EXPECT_EQ(value_words(MapValueKind::Lhist), 0u);
  EXPECT_EQ(value_words(MapValueKind::kCount), 0u);
}

TEST(Aggregate, UpdatesInPlace) {
  std::vector<uint64_t> w(2, 0);
  EXPECT_TRUE(apply_update(UpdateOp::Add, 5, w.data(), 1));
  EXPECT_TRUE(apply_update(UpdateOp::Add, u(-2), w.data(), 1));
  EXPECT_EQ(w[0], 3u);
  EXPECT_TRUE(apply_update(UpdateOp::Set, 9, w.data(), 1));
  EXPECT_EQ(w[0], 9u);

  std::vector<uint64_t> max(1, 0);
  EXPECT_TRUE(apply_update(UpdateOp::Max, 4, max.data(), 1));
  EXPECT_TRUE(apply_update(UpdateOp::Max, 2, max.data(), 1));
  EXPECT_EQ(max[0], 4u);
  EXPECT_TRUE(update_is_noop(UpdateOp::Max, u(-3)));
  EXPECT_FALSE(update_is_noop(UpdateOp::Max, 0));
  EXPECT_FALSE(update_is_noop(UpdateOp::Add, u(-3)));

  std::vector<uint64_t> avg(2, 0);
  EXPECT_TRUE(apply_update(UpdateOp::Avg, u(-10), avg.data(), 2));
  EXPECT_TRUE(apply_update(UpdateOp::Avg, 3, avg.data(), 2));
  EXPECT_EQ(avg[0], 2u);
  EXPECT_EQ(static_cast<int64_t>(avg[1]), -7);
  EXPECT_FALSE(apply_update(UpdateOp::Avg, 1, avg.data(), 1)) << "avg needs two words";

  std::vector<uint64_t> hist(kHistBuckets, 0);
  EXPECT_TRUE(apply_update(UpdateOp::Bucket, 3, hist.data(), kHistBuckets));
  EXPECT_TRUE(apply_update(UpdateOp::Bucket, 3, hist.data(), kHistBuckets));
  EXPECT_EQ(hist[3], 2u);
  EXPECT_FALSE(apply_update(UpdateOp::Bucket, kHistBuckets, hist.data(), kHistBuckets));
  EXPECT_FALSE(apply_update(UpdateOp::kCount, 1, hist.data(), kHistBuckets));
  EXPECT_FALSE(apply_update(UpdateOp::Add, 1, hist.data(), 0));
}

TEST(Aggregate, MergeRules) {
  std::vector<uint64_t> a{1, 2, 3};
  const std::vector<uint64_t> b{10, 20, 30};
  merge_value(MapValueKind::Hist, a.data(), b.data(), 3);
  EXPECT_EQ(a, (std::vector<uint64_t>{11, 22, 33}));

  std::vector<uint64_t> max{5};
  const std::vector<uint64_t> more{7};
  const std::vector<uint64_t> less{2};
  merge_value(MapValueKind::Max, max.data(), less.data(), 1);
  EXPECT_EQ(max[0], 5u);
  merge_value(MapValueKind::Max, max.data(), more.data(), 1);
  EXPECT_EQ(max[0], 7u);
  // min keeps 0xffffffff - x: the larger stored word is the smaller minimum.
  std::vector<uint64_t> min{kMinInverseBase - 4};
  const std::vector<uint64_t> smaller{kMinInverseBase - u(-3)};
  merge_value(MapValueKind::Min, min.data(), smaller.data(), 1);
  EXPECT_EQ(min[0], kMinInverseBase + 3);

  std::vector<uint64_t> any{1};
  merge_value(MapValueKind::Int, any.data(), more.data(), 1);
  EXPECT_EQ(any[0], 1u);
}

TEST(Aggregate, UpdatesSuitTheirKinds) {
  EXPECT_TRUE(update_suits(MapValueKind::Count, UpdateOp::Add));
  EXPECT_FALSE(update_suits(MapValueKind::Count, UpdateOp::Set));
  EXPECT_TRUE(update_suits(MapValueKind::Min, UpdateOp::Max));
  EXPECT_TRUE(update_suits(MapValueKind::Stats, UpdateOp::Avg));
  EXPECT_FALSE(update_suits(MapValueKind::Hist, UpdateOp::Add));
  EXPECT_TRUE(update_suits(MapValueKind::Lhist, UpdateOp::Bucket));
  EXPECT_FALSE(update_suits(MapValueKind::kCount, UpdateOp::Add));
}

} // namespace
} // namespace dprobe::bytecode
