// The load generator's reports as a person and a program read them: text and JSON.
#pragma once

#include <string>

#include "load/load_run.h"

namespace sb {

std::string second_json(const SecondReport& r);  // one line, no newline
std::string second_text(const SecondReport& r);
std::string summary_json(const LoadSummary& s);  // one object, one line
std::string summary_text(const LoadSummary& s);  // several lines

}  // namespace sb
