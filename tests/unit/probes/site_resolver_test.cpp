// spec -> site resolution against this test binary's own ELF file, with a fake process map.
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "elf/elf_file.h"
#include "probes/mechanism_planner.h"
#include "probes/site_resolver.h"

// A function with a known instruction layout: +0 push rbp (1) / +1 mov rbp,rsp (3) /
// +4 mov eax,1 (5) / +9 pop rbp (1) / +10 ret (1).
asm(R"(
  .text
  .globl probe_fixture
  .type probe_fixture, @function
probe_fixture:
  .byte 0x55
  .byte 0x48, 0x89, 0xe5
  .byte 0xb8, 0x01, 0x00, 0x00, 0x00
  .byte 0x5d
  .byte 0xc3
  .size probe_fixture, .-probe_fixture

  .globl ret_fixture
  .type ret_fixture, @function
ret_fixture:
  .byte 0x85, 0xff
  .byte 0x78, 0x03
  .byte 0xeb, 0x09
  .byte 0x90
  .byte 0xb8, 0x01, 0x00, 0x00, 0x00
  .byte 0xc3
  .size ret_fixture, .-ret_fixture
)");
// ret_fixture: +0 test edi,edi / +2 js +7 / +4 jmp +15 (past the end: a tail call) / +6 nop /
// +7 mov eax,1 / +12 ret.

namespace dprobe::probes {
namespace {

std::string self_path() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  buf[n > 0 ? n : 0] = '\0';
  return buf;
}

lang::AttachPoint uprobe(const std::string& symbol, uint64_t offset = 0) {
  lang::AttachPoint ap;
  ap.kind = lang::ProbeKind::Uprobe;
  ap.path = self_path();
  ap.symbol = symbol;
  ap.offset = offset;
  ap.raw = fmt::format("uprobe:{}:{}+{}", ap.path, symbol, offset);
  return ap;
}

TEST(SiteResolverExpand, WildcardNamesEveryMatchingFunction) {
  SiteResolver resolver("/");
  lang::AttachPoint ap = uprobe("probe_fixt*re");
  ap.raw = "u:" + ap.path + ":probe_fixt*re";
  auto expanded = resolver.expand(ap);
  ASSERT_TRUE(expanded) << expanded.error().message;
  ASSERT_EQ(expanded->size(), 1u);
  EXPECT_EQ((*expanded)[0].symbol, "probe_fixture");
  EXPECT_EQ((*expanded)[0].raw, "uprobe:" + ap.path + ":probe_fixture");

  auto exact = resolver.expand(uprobe("probe_fixture"));
  ASSERT_TRUE(exact);
  ASSERT_EQ(exact->size(), 1u);
  EXPECT_EQ((*exact)[0].raw, uprobe("probe_fixture").raw);  // as written

  ap.symbol = "no_such_fixture_*";
  ap.raw = "uprobe:x:no_such_fixture_*";
  auto none = resolver.expand(ap);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().message,
            "uprobe:x:no_such_fixture_*: no function matches 'no_such_fixture_*' in " + ap.path);
}

TEST(SiteResolverLocate, FindsInstructionAtOffset) {
  SiteResolver resolver("/");
  auto loc = resolver.locate(uprobe("probe_fixture", 4));
  ASSERT_TRUE(loc) << loc.error().message;
  EXPECT_EQ(loc->function, "probe_fixture");
  EXPECT_EQ(loc->function_offset, 4u);
  EXPECT_EQ(loc->instruction.length, 5);
  EXPECT_EQ(loc->instruction.bytes[0], 0xb8);
}

TEST(SiteResolverLocate, RefusesOffsetInsideAnInstruction) {
  SiteResolver resolver("/");
  auto ap = uprobe("probe_fixture", 2);
  auto loc = resolver.locate(ap);
  ASSERT_FALSE(loc);
  EXPECT_EQ(loc.error().message,
            ap.raw + ": offset 2 is not on an instruction boundary of probe_fixture "
                     "(instructions start at +0, +1, +4)");
}

TEST(SiteResolverLocate, RefusesOffsetPastTheEnd) {
  SiteResolver resolver("/");
  auto ap = uprobe("probe_fixture", 11);
  auto loc = resolver.locate(ap);
  ASSERT_FALSE(loc);
  EXPECT_EQ(loc.error().message, ap.raw + ": offset 11 is beyond the end of probe_fixture (11 bytes)");
}

TEST(SiteResolverLocate, MissingSymbolSuggestsNearNames) {
  SiteResolver resolver("/");
  auto loc = resolver.locate(uprobe("probe_fixtur"));
  ASSERT_FALSE(loc);
  EXPECT_NE(loc.error().message.find("no function 'probe_fixtur'"), std::string::npos)
      << loc.error().message;
  EXPECT_NE(loc.error().message.find("'probe_fixture'"), std::string::npos) << loc.error().message;
}

// A process map that places the whole file at `base`, as the kernel would map a PIE.
struct FakeProcess {
  std::vector<process::Mapping> maps;
  uint64_t base = 0x7f0000000000;
  const elf::ElfFile* file;

  explicit FakeProcess(const elf::ElfFile& f) : file(&f) {
    for (const auto& seg : f.load_segments()) {
      process::Mapping m{};
      m.start = base + (seg.vaddr & ~0xfffull);
      m.end = base + ((seg.vaddr + seg.memsz + 0xfff) & ~0xfffull);
      m.offset = seg.file_offset & ~0xfffull;
      m.readable = true;
      m.executable = seg.executable;
      m.is_private = true;
      m.device = f.device();
      m.inode = f.inode();
      m.path = f.path();
      maps.push_back(m);
    }
  }
};

lang::CompiledScript script_with(const lang::AttachPoint& ap) {
  lang::CompiledScript script;
  lang::ProbeBlock block;
  block.attach_points.push_back(ap);
  block.program_index = 0;
  script.probes.push_back(block);
  return script;
}

TEST(SiteResolverResolve, ComputesRuntimeAddressAndChecksBytes) {
  auto file = elf::ElfFile::open(self_path());
  ASSERT_TRUE(file);
  FakeProcess proc(**file);
  auto sym = (*file)->resolve_function("probe_fixture");
  ASSERT_TRUE(sym);
  SiteResolver resolver("/");
  auto sites = resolver.resolve(script_with(uprobe("probe_fixture", 1)), 4242, proc.maps,
                                [&](uint64_t address, std::span<uint8_t> out) -> Status {
                                  auto bytes = (*file)->read_at_vaddr(address - proc.base, out.size());
                                  if (!bytes) return std::unexpected(bytes.error());
                                  std::memcpy(out.data(), bytes->data(), out.size());
                                  return {};
                                });
  ASSERT_TRUE(sites) << sites.error().message;
  ASSERT_EQ(sites->size(), 1u);
  EXPECT_EQ((*sites)[0].address, proc.base + sym->address + 1);
  EXPECT_EQ((*sites)[0].instruction.address, proc.base + sym->address + 1);
  EXPECT_EQ((*sites)[0].instruction.length, 3);
}

TEST(SiteResolverResolve, ReturnProbeBecomesOneSitePerExit) {
  auto file = elf::ElfFile::open(self_path());
  ASSERT_TRUE(file);
  FakeProcess proc(**file);
  auto sym = (*file)->resolve_function("ret_fixture");
  ASSERT_TRUE(sym);
  lang::AttachPoint ap = uprobe("ret_fixture");
  ap.is_return = true;
  ap.raw = "uretprobe:" + ap.path + ":ret_fixture";
  lang::CompiledScript script = script_with(ap);
  lang::AttachPoint entry = uprobe("ret_fixture");
  script.probes[0].attach_points.push_back(entry);
  SiteResolver resolver("/");
  auto sites = resolver.resolve(script, 4242, proc.maps,
                                [&](uint64_t address, std::span<uint8_t> out) -> Status {
                                  auto bytes = (*file)->read_at_vaddr(address - proc.base, out.size());
                                  if (!bytes) return std::unexpected(bytes.error());
                                  std::memcpy(out.data(), bytes->data(), out.size());
                                  return {};
                                });
  ASSERT_TRUE(sites) << sites.error().message;
  ASSERT_EQ(sites->size(), 3u);
  const uint64_t start = proc.base + sym->address;
  EXPECT_EQ((*sites)[0].address, start + 4);
  EXPECT_EQ((*sites)[0].instruction.text, "jmp " + fmt::format("{:#x}", start + 15));
  EXPECT_EQ((*sites)[0].exit_note,
            fmt::format("exit 1 of 2 at ret_fixture+4: tail jump 'jmp {:#x}'", sym->address + 15));
  EXPECT_EQ((*sites)[1].address, start + 12);
  EXPECT_EQ((*sites)[1].instruction.text, "ret");
  EXPECT_EQ((*sites)[1].exit_note, "exit 2 of 2 at ret_fixture+12: ret 'ret'");
  EXPECT_EQ((*sites)[0].probe_names[0], ap.raw);
  EXPECT_EQ((*sites)[1].probe_names[0], ap.raw);
  // The uretprobe counts once: its second exit is a repeat.
  EXPECT_EQ((*sites)[0].attached_probe_count() + (*sites)[1].attached_probe_count(), 1u);
  EXPECT_EQ((*sites)[2].address, start);
  EXPECT_EQ((*sites)[2].attached_probe_count(), 1u);
  // Each site knows where the others are, so that no jump replaces their bytes.
  EXPECT_EQ((*sites)[2].neighbours, (std::vector<uint64_t>{start + 4, start + 12}));

  // The entry's jump would replace test/js/jmp (6 bytes), over the exit at +4: refused.
  auto choice = choose_mechanism((*sites)[2], (*sites)[2].function_code, "", std::nullopt);
  ASSERT_TRUE(choice) << choice.error().message;
  EXPECT_EQ(choice->mechanism, Mechanism::Int3Boost);
  EXPECT_NE(choice->reason.find(fmt::format("the probe at {:#x} lies in the", start + 4)),
            std::string::npos)
      << choice->reason;
}

TEST(SiteResolverResolve, RefusesCodeThatDiffersFromTheFile) {
  auto file = elf::ElfFile::open(self_path());
  ASSERT_TRUE(file);
  FakeProcess proc(**file);
  SiteResolver resolver("/");
  auto ap = uprobe("probe_fixture", 4);
  auto differs = resolver.resolve(script_with(ap), 4242, proc.maps,
                                  [](uint64_t, std::span<uint8_t> out) -> Status {
                                    std::fill(out.begin(), out.end(), 0x90);
                                    return {};
                                  });
  ASSERT_FALSE(differs);
  EXPECT_NE(differs.error().message.find("changed since process 4242 mapped it"), std::string::npos)
      << differs.error().message;

  auto trapped = resolver.resolve(script_with(ap), 4242, proc.maps,
                                  [](uint64_t, std::span<uint8_t> out) -> Status {
                                    std::fill(out.begin(), out.end(), 0xCC);
                                    return {};
                                  });
  ASSERT_FALSE(trapped);
  EXPECT_NE(trapped.error().message.find("already has a breakpoint"), std::string::npos)
      << trapped.error().message;
}

TEST(SiteResolverResolve, DeletedMappingMeansTheFileChanged) {
  auto file = elf::ElfFile::open(self_path());
  ASSERT_TRUE(file);
  FakeProcess proc(**file);
  for (auto& m : proc.maps) {
    m.inode += 1;  // the process runs an older copy that was replaced on disk
    m.deleted = true;
  }
  SiteResolver resolver("/");
  auto sites = resolver.resolve(script_with(uprobe("probe_fixture")), 4242, proc.maps,
                                [](uint64_t, std::span<uint8_t>) -> Status { return {}; });
  ASSERT_FALSE(sites);
  EXPECT_NE(sites.error().message.find("file changed since process 4242 mapped it"),
            std::string::npos)
      << sites.error().message;
}

TEST(SiteResolverResolve, TwoProbesOnOneAddressShareOneSite) {
  auto file = elf::ElfFile::open(self_path());
  ASSERT_TRUE(file);
  FakeProcess proc(**file);
  lang::CompiledScript script = script_with(uprobe("probe_fixture"));
  lang::ProbeBlock second;
  second.attach_points.push_back(uprobe("probe_fixture", 0));
  second.program_index = 1;
  script.probes.push_back(second);
  SiteResolver resolver("/");
  auto sites = resolver.resolve(script, 4242, proc.maps,
                                [&](uint64_t address, std::span<uint8_t> out) -> Status {
                                  auto bytes = (*file)->read_at_vaddr(address - proc.base, out.size());
                                  if (!bytes) return std::unexpected(bytes.error());
                                  std::memcpy(out.data(), bytes->data(), out.size());
                                  return {};
                                });
  ASSERT_TRUE(sites) << sites.error().message;
  ASSERT_EQ(sites->size(), 1u);
  EXPECT_EQ((*sites)[0].programs, (std::vector<uint32_t>{0, 1}));
}

TEST(SiteResolverResolve, FileNotMappedYetIsListedForLater) {
  auto file = elf::ElfFile::open(self_path());
  ASSERT_TRUE(file);
  FakeProcess proc(**file);
  auto sym = (*file)->resolve_function("probe_fixture");
  ASSERT_TRUE(sym);
  const auto read = [&](uint64_t address, std::span<uint8_t> out) -> Status {
    auto bytes = (*file)->read_at_vaddr(address - proc.base, out.size());
    if (!bytes) return std::unexpected(bytes.error());
    std::memcpy(out.data(), bytes->data(), out.size());
    return {};
  };
  const lang::CompiledScript script = script_with(uprobe("probe_fixture", 4));
  SiteResolver resolver("/");
  const std::vector<process::Mapping> nothing;

  auto refused = resolver.resolve(script, 4242, nothing, read);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("not mapped in process 4242"), std::string::npos)
      << refused.error().message;

  std::vector<UprobePoint> points;
  auto sites = resolver.resolve(script, 4242, nothing, read, &points);
  ASSERT_TRUE(sites) << sites.error().message;
  EXPECT_TRUE(sites->empty());
  ASSERT_EQ(points.size(), 1u);
  EXPECT_FALSE(points[0].mapped);
  EXPECT_EQ(points[0].file_vaddr, sym->address + 4);
  EXPECT_EQ(points[0].program, 0u);
  EXPECT_FALSE(resolver.is_mapped(points[0], nothing));

  // The loader maps it: resolved then, at its run-time address.
  ASSERT_TRUE(resolver.is_mapped(points[0], proc.maps));
  auto later = resolver.resolve_points(points, 4242, proc.maps, read);
  ASSERT_TRUE(later) << later.error().message;
  ASSERT_EQ(later->size(), 1u);
  EXPECT_EQ((*later)[0].address, proc.base + sym->address + 4);
  EXPECT_EQ((*later)[0].file_vaddr, sym->address + 4);
}

TEST(SiteResolverResolve, MissingSymbolInAFileNotMappedYetIsAnErrorAtOnce) {
  SiteResolver resolver("/");
  std::vector<UprobePoint> points;
  auto sites = resolver.resolve(script_with(uprobe("no_such_function_here")), 4242, {},
                                [](uint64_t, std::span<uint8_t>) -> Status { return {}; }, &points);
  ASSERT_FALSE(sites);
  EXPECT_NE(sites.error().message.find("no_such_function_here"), std::string::npos)
      << sites.error().message;
}

TEST(SiteResolverResolve, ReplacedFileIsNotWaitedFor) {
  auto file = elf::ElfFile::open(self_path());
  ASSERT_TRUE(file);
  FakeProcess proc(**file);
  for (auto& m : proc.maps) {
    m.inode += 1;
    m.deleted = true;
  }
  SiteResolver resolver("/");
  std::vector<UprobePoint> points;
  auto sites = resolver.resolve(script_with(uprobe("probe_fixture")), 4242, proc.maps,
                                [](uint64_t, std::span<uint8_t>) -> Status { return {}; }, &points);
  ASSERT_FALSE(sites);
  EXPECT_NE(sites.error().message.find("file changed since process 4242 mapped it"),
            std::string::npos)
      << sites.error().message;
}

}  // namespace
}  // namespace dprobe::probes
