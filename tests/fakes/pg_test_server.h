// The PostgreSQL server of the C++ tests: its URL from the ctest fixture `pg_server`.
//
// tests/CMakeLists.txt starts one private server per ctest run (tests/support/postgres.py) and
// gives every gtest whose name contains "Postgres" or "Pg" SB_TEST_PG_URL (a libpq URI, no
// password) and PGPASSFILE (the test role's password, which libpq reads itself). Run by hand,
// such a test skips unless both are set:
//   eval "$(PYTHONPATH=tests /usr/bin/python3 -m support.postgres start /tmp/sbpg)"
//   build/tests/pg_tests --gtest_filter='*Pg*'
//   PYTHONPATH=tests /usr/bin/python3 -m support.postgres stop /tmp/sbpg
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <optional>
#include <string>

#include <gtest/gtest.h>

namespace sb::testing {

// The server's URL, or nullopt when no server was provided.
inline std::optional<std::string> test_pg_url() {
  const char* url = std::getenv("SB_TEST_PG_URL");
  if (url == nullptr || *url == '\0') return std::nullopt;
  return std::string(url);
}

// A name no other test process uses at the same time (ctest -j runs tests of one server in
// parallel): prefix, the process id and a counter.
inline std::string unique_pg_name(const std::string& prefix) {
  static int counter = 0;
  return prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
}

}  // namespace sb::testing

// In a test body: the URL, or the test is skipped with a note saying how to provide one.
#define SB_REQUIRE_PG_URL(var)                                                                  \
  std::string var;                                                                              \
  if (auto sb_pg_url_ = ::sb::testing::test_pg_url()) {                                         \
    var = *sb_pg_url_;                                                                          \
  } else {                                                                                      \
    GTEST_SKIP() << "no PostgreSQL: run under ctest (fixture pg_server) or set SB_TEST_PG_URL " \
                    "(tests/fakes/pg_test_server.h)";                                           \
  }
