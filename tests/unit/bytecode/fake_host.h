// A VmHost over plain containers, for driving the VM directly in tests.
#pragma once

#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "bytecode/vm.h"

namespace dprobe::bytecode::testing {

class FakeHost {
 public:
  /// Readable target memory: [address, address + bytes.size()).
  void add_memory(uint64_t address, std::string bytes) { memory_[address] = std::move(bytes); }

  VmHost host() {
    return VmHost{this,          &read,         &lookup,      &update, &remove,
                  &printf_event, &exit_request, &map_command, &stack_id};
  }

  std::map<std::pair<uint32_t, std::string>, uint64_t> maps;
  std::vector<std::pair<uint32_t, std::string>> printfs; ///< (format id, packed args)
  std::vector<std::pair<uint64_t, uint64_t>> reads;      ///< (address, length) asked for
  int exits = 0;
  std::vector<uint32_t> stack_requests; ///< max_frames of every ustack
  /// (map id, MapCommandKind) of every print/clear/zero, in order.
  std::vector<std::pair<uint32_t, uint32_t>> commands;
  /// Every MapUpdate as (map id, op, value), in order.
  std::vector<std::tuple<uint32_t, uint32_t, uint64_t>> updates;

 private:
  static FakeHost& self(void* ctx) { return *static_cast<FakeHost*>(ctx); }

  static bool read(void* ctx, uint64_t address, void* dst, uint64_t length) {
    FakeHost& h = self(ctx);
    h.reads.emplace_back(address, length);
    for (const auto& [base, bytes] : h.memory_) {
      if (address >= base && address - base <= bytes.size() &&
          length <= bytes.size() - (address - base)) {
        std::memcpy(dst, bytes.data() + (address - base), length);
        return true;
      }
    }
    return false;
  }
  static bool lookup(void* ctx, uint32_t map, const uint8_t* key, uint32_t size, uint64_t* value) {
    FakeHost& h = self(ctx);
    const auto it = h.maps.find({map, std::string(reinterpret_cast<const char*>(key), size)});
    if (it == h.maps.end()) return false;
    *value = it->second;
    return true;
  }
  static bool update(void* ctx, uint32_t map, const uint8_t* key, uint32_t size, uint32_t op,
                     uint64_t value) {
    self(ctx).updates.emplace_back(map, op, value);
    uint64_t& slot = self(ctx).maps[{map, std::string(reinterpret_cast<const char*>(key), size)}];
    slot = op == static_cast<uint32_t>(UpdateOp::Add) ? slot + value : value;
    return true;
  }
  static void remove(void* ctx, uint32_t map, const uint8_t* key, uint32_t size) {
    self(ctx).maps.erase({map, std::string(reinterpret_cast<const char*>(key), size)});
  }
  static void printf_event(void* ctx, uint32_t format, const uint8_t* args, uint32_t size) {
    self(ctx).printfs.emplace_back(format, std::string(reinterpret_cast<const char*>(args), size));
  }
  static void exit_request(void* ctx) { ++self(ctx).exits; }
  static void map_command(void* ctx, uint32_t map, uint32_t command) {
    self(ctx).commands.emplace_back(map, command);
  }
  /// ustack: the frame limits asked for, and a made-up id from it.
  static uint64_t stack_id(void* ctx, uint32_t max_frames, uint32_t /*skip*/) {
    self(ctx).stack_requests.push_back(max_frames);
    return 0x5000 + max_frames;
  }

  std::map<uint64_t, std::string> memory_;
};

} // namespace dprobe::bytecode::testing
