// LazyLib: a library opened on first use finds its functions; a missing one ends the process
// with a message naming it, as the dynamic loader did at start.
#include "base/lazy_lib.h"

#include <gtest/gtest.h>

#include <cstring>

namespace sb {
namespace {

TEST(LazyLib, FindsAFunctionOfTheLibrary) {
  static LazyLib libc("libc.so.6");
  auto real_strlen = lazy_function<decltype(&std::strlen)>(libc, "strlen");
  EXPECT_EQ(real_strlen("four"), 4u);
  EXPECT_EQ(lazy_function<decltype(&std::strlen)>(libc, "strlen"), real_strlen);
}

TEST(LazyLibDeathTest, AMissingLibraryOrSymbolIsNamed) {
  static LazyLib missing("libsmtpblast-no-such-library.so.1");
  EXPECT_EXIT(missing.symbol("f"), testing::ExitedWithCode(127),
              "cannot load libsmtpblast-no-such-library.so.1");
  static LazyLib libc("libc.so.6");
  EXPECT_EXIT(libc.symbol("sb_no_such_function"), testing::ExitedWithCode(127),
              "libc.so.6: no symbol sb_no_such_function");
}

}  // namespace
}  // namespace sb
