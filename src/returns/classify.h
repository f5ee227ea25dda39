// The bounce classifier: a rule table (status-code patterns + RE2 over the diagnostic) as data.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "returns/report.h"

namespace sb {

// What a return means for the recipient. Names (class_name) are what the store and JSON hold.
enum class BounceClass : unsigned char {
  kHard = 0,       // the address does not work: suppress it
  kSoft = 1,       // temporary (mailbox full, delayed): count; N of them count as hard
  kBlock = 2,      // the sender's fault or policy (spam block, auth, size): not the address's
  kComplaint = 3,  // the recipient complained (ARF): suppress
  kAutoReply = 4,  // out-of-office, challenge-response: leave alone
  kDelivered = 5,  // a DSN saying delivered/relayed/expanded: nothing to do
  kUnknown = 6,    // nothing recognised: leave alone
};
inline constexpr int kBounceClassCount = 7;
const char* class_name(BounceClass c);

struct Classification {
  BounceClass cls = BounceClass::kUnknown;
  std::string category;  // "invalid-recipient", "mailbox-full", "spam-block", ... (the rule's)
  int rule_line = 0;     // the rule's line in its file (0: decided without a rule)
  bool user_rule = false;
};

// The rule table. One rule a line; '#' starts a comment line; blank lines ignored:
//   CLASS  CATEGORY  STATUS  [REGEX]
// CLASS is hard, soft or block; CATEGORY a word of the user's choice; STATUS an enhanced
// status code pattern where each of the three parts may be '*' ("5.1.1", "5.1.*", "4.*.*",
// "*" for any, including none); REGEX (the rest of the line, RE2 syntax, case-insensitive,
// unanchored) must match the diagnostic text when given. The first rule whose STATUS and
// REGEX both match decides. A user file's rules are tried before the shipped ones, so a user
// line overrides any default; default_rules_text() shows the shipped table.
class Classifier {
 public:
  // Compiles the shipped rules, with `user_rules` (file contents; may be empty) in front.
  // A bad line is a kConfig error naming `user_name` and the line.
  static Result<Classifier> create(std::string_view user_rules = {},
                                   std::string_view user_name = "rules");
  Classifier(Classifier&&) noexcept;
  Classifier& operator=(Classifier&&) noexcept;
  ~Classifier();

  // One recipient of a DSN: by its action, status code and diagnostic.
  Classification classify(const RecipientReport& r) const;
  // A whole return: ARF -> complaint, auto-reply -> auto-reply, unknown -> unknown, a DSN by
  // its recipient (index i of r.recipients).
  Classification classify(const ReturnReport& r, size_t i) const;
  // A reply met while sending (code + text), for the accounting log's category column.
  Classification classify_reply(int code, std::string_view text) const;

  size_t size() const;

 private:
  struct Rule;
  struct Matcher;  // the compiled RE2::Set, kept out of this header
  Classifier();
  std::vector<Rule> rules_;
  std::unique_ptr<Matcher> set_;
};

std::string_view default_rules_text();

}  // namespace sb
