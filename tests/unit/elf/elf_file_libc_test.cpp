// ElfFile on the system C library this test runs with.
#include <dlfcn.h>

#include <gtest/gtest.h>

#include <cstring>

#include "elf/elf_file.h"
#include "self_image.h"

namespace dprobe::elf {
namespace {

class LibcElfTest : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    auto object = testing::loaded_object_named("libc.so.6");
    ASSERT_TRUE(object.has_value()) << "libc.so.6 is not loaded";
    libc_ = new testing::LoadedObject(std::move(*object));
    auto opened = ElfFile::open(libc_->path);
    ASSERT_TRUE(opened.has_value()) << opened.error().text();
    file_ = opened->release();
  }
  static void TearDownTestSuite() {
    delete file_;
    delete libc_;
  }

  static ElfFile *file_;
  static testing::LoadedObject *libc_;
};

ElfFile *LibcElfTest::file_ = nullptr;
testing::LoadedObject *LibcElfTest::libc_ = nullptr;

TEST_F(LibcElfTest, IsASharedLibrary) {
  EXPECT_TRUE(file_->is_dynamic());
  EXPECT_EQ(file_->path(), libc_->path);
}

TEST_F(LibcElfTest, MallocFromDynsymIsWhereTheLoaderPutIt) {
  const Symbol *malloc_symbol = file_->find_function("malloc");
  ASSERT_NE(malloc_symbol, nullptr);
  EXPECT_TRUE(malloc_symbol->is_function);
  EXPECT_TRUE(malloc_symbol->is_global);
  EXPECT_GT(malloc_symbol->size, 0u);

  // libc's own malloc, not an interposer's (e.g. ASan's).
  void *handle = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
  ASSERT_NE(handle, nullptr);
  void *runtime_malloc = dlsym(handle, "malloc");
  dlclose(handle);
  ASSERT_NE(runtime_malloc, nullptr);
  EXPECT_EQ(libc_->bias + malloc_symbol->address, reinterpret_cast<uint64_t>(runtime_malloc));

  size_t length = std::min<size_t>(malloc_symbol->size, 32);
  auto bytes = file_->read_at_vaddr(malloc_symbol->address, length);
  ASSERT_TRUE(bytes.has_value()) << bytes.error().text();
  EXPECT_EQ(std::memcmp(bytes->data(), runtime_malloc, length), 0);

  const Symbol *containing = file_->function_containing(malloc_symbol->address + 1);
  ASSERT_NE(containing, nullptr);
  EXPECT_EQ(containing->address, malloc_symbol->address);
}

TEST_F(LibcElfTest, VersionedFunctionResolvesToTheDefaultVersion) {
  // glibc keeps pthread_cond_wait@GLIBC_2.2.5 (old condvar ABI) at a lower address than the
  // default pthread_cond_wait@@GLIBC_2.3.2; dlsym, like the linker, binds to the default.
  void *handle = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
  ASSERT_NE(handle, nullptr);
  void *runtime_wait = dlsym(handle, "pthread_cond_wait");
  dlclose(handle);
  ASSERT_NE(runtime_wait, nullptr);
  const Symbol *wait = file_->find_function("pthread_cond_wait");
  ASSERT_NE(wait, nullptr);
  EXPECT_TRUE(wait->is_default_version);
  EXPECT_EQ(libc_->bias + wait->address, reinterpret_cast<uint64_t>(runtime_wait));
}

TEST_F(LibcElfTest, NamesCarryNoVersionSuffix) {
  for (const Symbol &s : file_->all_symbols()) {
    ASSERT_EQ(s.name.find('@'), std::string::npos) << s.name;
  }
}

TEST_F(LibcElfTest, SuggestsMallocForATypo) {
  auto typo = file_->resolve_function("mallco");
  ASSERT_FALSE(typo.has_value());
  EXPECT_EQ(typo.error().text(), libc_->path + ": no function 'mallco' (did you mean 'malloc'?)");
}

TEST_F(LibcElfTest, WildcardOverDynsym) {
  std::vector<const Symbol *> matches = file_->match_functions("pthread_mutex_*lock");
  std::vector<std::string> names;
  for (const Symbol *s : matches)
    names.push_back(s->name);
  EXPECT_NE(std::find(names.begin(), names.end(), "pthread_mutex_lock"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "pthread_mutex_unlock"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "pthread_mutex_trylock"), names.end());
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
}

TEST_F(LibcElfTest, BuildIdEqualsTheNoteInMemory) {
  std::string expected = testing::build_id_in_memory(*libc_);
  ASSERT_FALSE(expected.empty());
  EXPECT_EQ(file_->build_id(), expected);
}

} // namespace
} // namespace dprobe::elf
