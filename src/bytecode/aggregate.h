// Map value kinds and how aggregations store, update and merge their values, shared by the VM's
// hosts (the controller's MapStore, the agent's map tables), the region reader that merges the
// agent's per-thread tables, and the printer. Freestanding: only <stdint.h>, no std:: library.
//
// A map value is one or more 64-bit words; the layouts copy bpftrace 0.17's, including its quirks,
// so that merged values print as bpftrace prints them:
//   Count, Sum, Int   word 0: the value
//   Max               word 0: the largest value seen; bpftrace compares against a missing entry
//                     as 0, so an entry exists only once a value >= 0 arrived (negative values
//                     alone leave the map empty)
//   Min               word 0: 0xffffffff - the smallest value, kept as a Max of that inverse
//                     (bpftrace's trick): values > 0xffffffff never create an entry
//   Avg, Stats        word 0: how many values, word 1: their sum
//   Hist              kHistBuckets words: bucket counts (see hist_bucket)
//   Lhist             lhist_buckets(min, max, step) words: bucket counts (see lhist_bucket)
#pragma once

#include <stdint.h>

#include "bytecode/isa.h"

namespace dprobe::bytecode {

enum class MapValueKind : uint8_t {
  Count = 0, ///< count(): printed unsigned; a keyless count map always shows (0 when never hit)
  Int = 1,   ///< plain integer assignment; printed signed or unsigned per value_signed
  Sum = 2,   ///< sum(x)
  Min = 3,   ///< min(x)
  Max = 4,   ///< max(x)
  Avg = 5,   ///< avg(x)
  Stats = 6, ///< stats(x)
  Hist = 7,  ///< hist(x)
  Lhist = 8, ///< lhist(x, min, max, step)
  /// `@m[k] = "text"`: kept by the controller only, set and deleted by ordered MapSet/MapDelete
  /// events (the agent's tables hold 8-byte values); printed sorted by key, as bpftrace does.
  String = 9,
  kCount
};

/// hist(): bucket 0 holds negative values, 1 holds 0, 2 + k holds [2^k, 2^(k+1)). bpftrace 0.17
/// finds k with five halving steps (16, 8, 4, 2, 1), so k is at most 31: larger values land in
/// the low buckets of that search (2^35 counts as [2G, 4G)), exactly as there.
inline constexpr uint32_t kHistBuckets = 2 + 32;

/// Words of a value above which a layout is refused (an lhist of at most 1000 buckets + 2).
inline constexpr uint32_t kMaxValueWords = 1024;

/// The value 0xffffffff - x that min() keeps (as a max).
inline constexpr uint64_t kMinInverseBase = 0xffffffffull;

inline constexpr uint64_t hist_bucket(uint64_t value) {
  const auto v = static_cast<int64_t>(value);
  if (v < 0) return 0;
  if (v == 0) return 1;
  uint64_t n = value;
  uint64_t result = 0;
  for (uint32_t shift = 16; shift > 0; shift /= 2) {
    if (n >= (1ull << shift)) {
      n >>= shift;
      result += shift;
    }
  }
  return result + 2;
}

/// Buckets of an lhist: (max - min) / step inside, one below min, one for max and above.
/// 0 for parameters the language refuses (step <= 0, max <= min, too many buckets).
inline constexpr uint32_t lhist_buckets(int64_t min, int64_t max, int64_t step) {
  if (step <= 0 || max <= min) return 0;
  const uint64_t inside = (static_cast<uint64_t>(max) - static_cast<uint64_t>(min)) /
                          static_cast<uint64_t>(step);
  if (inside + 2 > kMaxValueWords) return 0;
  return static_cast<uint32_t>(inside + 2);
}

/// bpftrace 0.17's linear bucket: 0 below min, 1 + (max - min) / step above max, else
/// 1 + (value - min) / step. Parameters must have passed lhist_buckets.
inline constexpr uint64_t lhist_bucket(uint64_t value, int64_t min, int64_t max, int64_t step) {
  const auto v = static_cast<int64_t>(value);
  if (v < min) return 0;
  if (v > max) {
    return 1 + (static_cast<uint64_t>(max) - static_cast<uint64_t>(min)) /
                   static_cast<uint64_t>(step);
  }
  return 1 + (static_cast<uint64_t>(v) - static_cast<uint64_t>(min)) / static_cast<uint64_t>(step);
}

/// Words of one value of this kind (0 for a bad kind or bad lhist parameters).
inline constexpr uint32_t value_words(MapValueKind kind, int64_t lhist_min = 0,
                                      int64_t lhist_max = 0, int64_t lhist_step = 0) {
  switch (kind) {
  case MapValueKind::Count:
  case MapValueKind::Int:
  case MapValueKind::Sum:
  case MapValueKind::Min:
  case MapValueKind::Max:
  case MapValueKind::String: // held by the controller only; the agent never stores one
    return 1;
  case MapValueKind::Avg:
  case MapValueKind::Stats:
    return 2;
  case MapValueKind::Hist:
    return kHistBuckets;
  case MapValueKind::Lhist:
    return lhist_buckets(lhist_min, lhist_max, lhist_step);
  case MapValueKind::kCount:
    break;
  }
  return 0;
}

/// How tables of one map held by different threads combine: Sum adds word by word, Max keeps
/// the signed maximum of word 0 (min's inverse too), Any keeps one of them (plain assignment).
enum class MergeRule : uint8_t { Sum, Max, Any };

inline constexpr MergeRule merge_rule(MapValueKind kind) {
  switch (kind) {
  case MapValueKind::Min:
  case MapValueKind::Max:
    return MergeRule::Max;
  case MapValueKind::Int:
  case MapValueKind::String:
    return MergeRule::Any;
  default:
    return MergeRule::Sum;
  }
}

/// Folds `src` into `dst` (both `words` long) by the kind's rule.
inline void merge_value(MapValueKind kind, uint64_t* dst, const uint64_t* src, uint32_t words) {
  switch (merge_rule(kind)) {
  case MergeRule::Sum:
    for (uint32_t i = 0; i < words; ++i)
      dst[i] += src[i];
    return;
  case MergeRule::Max:
    if (words > 0 && static_cast<int64_t>(src[0]) > static_cast<int64_t>(dst[0])) dst[0] = src[0];
    return;
  case MergeRule::Any:
    return;
  }
}

/// An update that leaves the map as it is, creating no entry: max() of a negative value (bpftrace
/// compares it with the missing entry's 0 and stores nothing). Hosts check it before inserting.
inline constexpr bool update_is_noop(UpdateOp op, uint64_t value) {
  return op == UpdateOp::Max && static_cast<int64_t>(value) < 0;
}

/// Applies an update to a value of `words` words in place (plain stores: one writer). False when
/// the update cannot apply to such a value (bad op, bucket out of range); the value is unchanged.
inline bool apply_update(UpdateOp op, uint64_t value, uint64_t* words, uint32_t count) {
  if (count == 0) return false;
  switch (op) {
  case UpdateOp::Set:
    words[0] = value;
    return true;
  case UpdateOp::Add:
    words[0] += value;
    return true;
  case UpdateOp::Max:
    if (static_cast<int64_t>(value) >= static_cast<int64_t>(words[0])) words[0] = value;
    return true;
  case UpdateOp::Avg:
    if (count < 2) return false;
    words[0] += 1;
    words[1] += value;
    return true;
  case UpdateOp::Bucket:
    if (value >= count) return false;
    words[value] += 1;
    return true;
  case UpdateOp::kCount:
    break;
  }
  return false;
}

/// Whether `op` may update a map of this kind (the verifier's rule).
inline constexpr bool update_suits(MapValueKind kind, UpdateOp op) {
  switch (kind) {
  case MapValueKind::Count:
  case MapValueKind::Sum:
    return op == UpdateOp::Add;
  case MapValueKind::Int:
    return op == UpdateOp::Set || op == UpdateOp::Add;
  case MapValueKind::Min:
  case MapValueKind::Max:
    return op == UpdateOp::Max;
  case MapValueKind::Avg:
  case MapValueKind::Stats:
    return op == UpdateOp::Avg;
  case MapValueKind::Hist:
  case MapValueKind::Lhist:
    return op == UpdateOp::Bucket;
  case MapValueKind::String: // set and deleted through ordered events, never by MapUpdate
  case MapValueKind::kCount:
    break;
  }
  return false;
}

} // namespace dprobe::bytecode
