// EngineEvents: what the engine reports while it runs (notes, progress) instead of printing;
// the command line decides what a user sees, and tests run the engine silently.
#pragma once

#include <cstdint>
#include <string>

namespace sb {

enum class NoteKind : uint8_t {
  kError,    // printed as "smtpblast: TEXT"
  kWarning,  // "smtpblast: warning: TEXT"
  kNotice,   // TEXT as it is (it may start with a line break, to end a progress line)
};

// The run so far, per recipient (a recipient deferred three times is one deferred).
struct ProgressView {
  double seconds = 0;
  uint64_t sent = 0, failed = 0, deferred = 0, attempts = 0;
  uint64_t todo = 0;  // recipients left to send when the run started (0: not counted)
};

class EngineEvents {
 public:
  virtual ~EngineEvents() = default;
  virtual void note(NoteKind kind, const std::string& text) = 0;
  // About once a second while the run goes, and once at its end (`final_line`).
  virtual void progress(const ProgressView& p, bool final_line) = 0;
};

// Says nothing (tests).
class SilentEvents final : public EngineEvents {
 public:
  void note(NoteKind, const std::string&) override {}
  void progress(const ProgressView&, bool) override {}
};

}  // namespace sb
