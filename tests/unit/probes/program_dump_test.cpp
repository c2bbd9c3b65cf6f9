#include "program_dump.h"

#include <gtest/gtest.h>

namespace dprobe::cli {
namespace {

TEST(ProgramDump, ListsProbesTablesAndCode) {
  auto script =
      lang::compile("uprobe:./app:f, u:./app:g+4 { @c[comm] = count(); printf(\"%d\\n\", arg0); } "
                    "interval:hz:4 { exit(); }",
                    "stdin");
  ASSERT_TRUE(script) << script.error().message;
  const std::string dump = dump_program(*script);
  EXPECT_NE(dump.find("probes (2):\n  program 0:\n"
                      "    uprobe uprobe:./app:f: path ./app symbol f offset 0\n"
                      "    uprobe u:./app:g+4: path ./app symbol g offset 4\n"
                      "  program 1:\n    interval interval:hz:4: every 250000000 ns\n"),
            std::string::npos)
      << dump;
  EXPECT_NE(dump.find("maps (1):\n  0: @c key (string) value count max_entries 4096\n"),
            std::string::npos)
      << dump;
  EXPECT_NE(dump.find("formats (1):\n  0: \"%d\\n\" args (int)\n"), std::string::npos) << dump;
  EXPECT_NE(dump.find("program 0: "), std::string::npos) << dump;
  EXPECT_NE(dump.find("program 1: interval:hz:4 (frame 0 bytes):\n   0: exit\n"), std::string::npos)
      << dump;
}

} // namespace
} // namespace dprobe::cli
