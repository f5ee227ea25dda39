// The merge data `smtpblast test` renders its one message with: a row of a task or CSV, --field.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace sb {

struct TestDataArgs {
  std::string task;                 // --task T.db: its recipients
  std::string csv;                  // --recipients list.csv: its rows
  uint64_t row = 0;                 // --row N (1-based; 0: not given, the first row)
  std::vector<std::string> fields;  // --field name=value (repeatable), over the row's values
};

struct TestData {
  std::vector<std::string> names;   // merge field names, as the template binds them
  std::vector<std::string> values;  // aligned with names
  std::string email;                // the row's address ("" without a task or CSV)
  std::string source;               // "row 3 of list.csv", for the report
};

// Reads the N-th recipient (in the order of the list; rows rejected at import count too) of
// the task or CSV, then applies the --field values (a new name adds a field; "email" sets the
// address). Without a task or CSV only the --field values. Errors name the flag.
Result<TestData> load_test_data(const TestDataArgs& a);

}  // namespace sb
