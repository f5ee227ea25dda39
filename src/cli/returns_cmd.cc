// run_returns: mailbox readers (maildir, mbox, stdin) -> parse -> match -> classify -> record.
#include "cli/returns_cmd.h"

#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli/relay_options.h"
#include "cli/send_cmd.h"
#include "pg/task_open.h"
#include "returns/classify.h"
#include "returns/remote_mailbox.h"
#include "returns/report.h"
#include "returns/task_keys.h"
#include "returns/verp.h"
#include "store/task_store.h"

namespace sb {
namespace {

namespace fs = std::filesystem;

// A message larger than this is not read whole: its prefix is hashed and parsed (with its
// size in the key), so a 2 GB file in the mailbox costs no more than a big one.
constexpr size_t kMaxMessageRead = 64u << 20;

struct Message {
  std::string name;                    // file name (maildir), "mbox #N", or "stdin"
  fs::path path;                       // maildir only: what to delete
  const RemoteItem* remote = nullptr;  // --mailbox: what to delete, and its UID/UIDL memory
  std::string bytes;
  uint64_t size = 0;
};

std::optional<std::string> read_capped(const fs::path& p, uint64_t* size, std::string* err) {
  std::ifstream f(p, std::ios::binary);
  if (!f) {
    *err = p.string() + ": " + std::strerror(errno);
    return std::nullopt;
  }
  std::error_code ec;
  uint64_t st_size = fs::file_size(p, ec);
  // Sized from the file, not the cap: most returns are a few KB.
  std::string out;
  out.resize(ec ? kMaxMessageRead : std::min<uint64_t>(st_size, kMaxMessageRead));
  f.read(out.data(), static_cast<std::streamsize>(out.size()));
  out.resize(static_cast<size_t>(f.gcount()));
  *size = ec ? out.size() : std::max<uint64_t>(st_size, out.size());
  return out;
}

std::string sha256_hex(std::string_view data, uint64_t size) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  EVP_DigestUpdate(ctx, data.data(), data.size());
  if (size != data.size()) {
    std::string sz = std::to_string(size);
    EVP_DigestUpdate(ctx, sz.data(), sz.size());
  }
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
}

// mboxrd/mboxo: a message starts at a "From " line at the start of the file or after a blank
// line; ">From " lines (with any number of '>') lose one '>'.
std::vector<std::string> split_mbox(std::string_view all) {
  std::vector<std::string> out;
  std::string cur;
  bool in_msg = false;
  bool prev_blank = true;
  size_t pos = 0;
  while (pos < all.size()) {
    size_t nl = all.find('\n', pos);
    size_t end = nl == std::string_view::npos ? all.size() : nl + 1;
    std::string_view line = all.substr(pos, end - pos);
    pos = end;
    if (prev_blank && line.substr(0, 5) == "From ") {
      if (in_msg) out.push_back(std::move(cur));
      cur.clear();
      in_msg = true;
      prev_blank = false;
      continue;
    }
    std::string_view body = line;
    size_t k = 0;
    while (k < body.size() && body[k] == '>') ++k;
    if (k > 0 && body.substr(k, 5) == "From ") body.remove_prefix(1);
    if (in_msg) cur.append(body);
    prev_blank = line == "\n" || line == "\r\n";
  }
  if (in_msg) out.push_back(std::move(cur));
  return out;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

struct Tally {
  uint64_t read = 0, seen = 0, hard = 0, soft = 0, block = 0, complaints = 0, autoreplies = 0,
           unmatched = 0, forged = 0, unknown = 0, other = 0, deleted = 0;
};

ReturnEffect effect_of(BounceClass c) {
  switch (c) {
    case BounceClass::kHard: return ReturnEffect::kHard;
    case BounceClass::kSoft: return ReturnEffect::kSoft;
    case BounceClass::kComplaint: return ReturnEffect::kComplaint;
    default: return ReturnEffect::kNone;
  }
}

}  // namespace

int run_returns(const ReturnsOptions& o) {
  int sources = !o.maildir.empty() + !o.mbox.empty() + (o.stdin_eml ? 1 : 0) + !o.mailbox.empty();
  if (sources != 1) {
    std::fprintf(stderr,
                 "smtpblast: returns: give exactly one of --mailbox URL, --maildir DIR, "
                 "--mbox FILE or - (one message on stdin)\n");
    return 2;
  }
  if (o.mailbox_tls != "verify" && o.mailbox_tls != "none") {
    std::fprintf(stderr, "smtpblast: --mailbox-tls: '%s' is not verify or none\n",
                 o.mailbox_tls.c_str());
    return 2;
  }
  RemoteMailboxConfig rcfg;
  if (!o.mailbox.empty()) {
    rcfg.url = o.mailbox;
    rcfg.plain = o.mailbox_tls == "none";
    rcfg.ca_file = o.mailbox_ca;
    if (!o.mailbox_password_file.empty()) {
      std::ifstream f(o.mailbox_password_file, std::ios::binary);
      if (!f) {
        std::fprintf(stderr, "smtpblast: --mailbox-password-file: cannot read %s: %s\n",
                     o.mailbox_password_file.c_str(), std::strerror(errno));
        return 2;
      }
      std::getline(f, rcfg.password);
      if (!rcfg.password.empty() && rcfg.password.back() == '\r') rcfg.password.pop_back();
    } else if (const char* env = std::getenv("SMTPBLAST_MAILBOX_PASSWORD")) {
      rcfg.password = env;
    } else {
      std::fprintf(stderr,
                   "smtpblast: --mailbox needs --mailbox-password-file FILE or "
                   "SMTPBLAST_MAILBOX_PASSWORD in the environment\n");
      return 2;
    }
  }
  std::string rules_text;
  if (!o.rules_file.empty()) {
    std::ifstream f(o.rules_file, std::ios::binary);
    if (!f) {
      std::fprintf(stderr, "smtpblast: --rules: cannot read %s: %s\n", o.rules_file.c_str(),
                   std::strerror(errno));
      return 2;
    }
    rules_text.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  auto classifier = Classifier::create(rules_text, o.rules_file.empty() ? "rules" : o.rules_file);
  if (!classifier.ok()) {
    std::fprintf(stderr, "smtpblast: --rules: %s\n", classifier.error().message.c_str());
    return 2;
  }
  if (!o.keep_dir.empty()) {
    std::error_code ec;
    fs::create_directories(o.keep_dir, ec);
    if (ec) {
      std::fprintf(stderr, "smtpblast: --keep %s: %s\n", o.keep_dir.c_str(), ec.message().c_str());
      return 2;
    }
  }

  // The mailbox is listed before the task is touched, so a wrong path changes nothing.
  std::vector<Message> msgs;
  std::vector<fs::path> files;
  if (!o.maildir.empty()) {
    bool any = false;
    for (const char* sub : {"new", "cur"}) {
      fs::path d = fs::path(o.maildir) / sub;
      std::error_code ec;
      if (!fs::is_directory(d, ec)) continue;
      any = true;
      for (fs::directory_iterator it(d, ec), end; !ec && it != end; it.increment(ec)) {
        if (it->is_regular_file(ec)) files.push_back(it->path());
      }
      if (ec) {
        std::fprintf(stderr, "smtpblast: --maildir: %s: %s\n", d.c_str(), ec.message().c_str());
        return 2;
      }
    }
    if (!any) {
      std::fprintf(stderr, "smtpblast: --maildir %s is not a maildir (no new/ or cur/)\n",
                   o.maildir.c_str());
      return 2;
    }
    std::sort(files.begin(), files.end());
  } else if (!o.mbox.empty()) {
    uint64_t size = 0;
    std::string err;
    auto all = read_capped(o.mbox, &size, &err);
    if (!all) {
      std::fprintf(stderr, "smtpblast: --mbox: cannot read %s\n", err.c_str());
      return 2;
    }
    if (size > all->size()) {
      std::fprintf(stderr, "smtpblast: --mbox %s is larger than %zu MB; split it first\n",
                   o.mbox.c_str(), kMaxMessageRead >> 20);
      return 2;
    }
    size_t n = 0;
    for (std::string& m : split_mbox(*all)) {
      Message msg;
      msg.name = "mbox #" + std::to_string(++n);
      msg.size = m.size();
      msg.bytes = std::move(m);
      msgs.push_back(std::move(msg));
    }
  } else if (o.stdin_eml) {
    Message msg;
    msg.name = "stdin";
    msg.bytes.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    msg.size = msg.bytes.size();
    msgs.push_back(std::move(msg));
  }

  int lock = lock_task(o.task);  // a running send writes the same rows
  if (lock < 0) return 2;
  auto opened = open_task_store(o.task, TaskOpen::kWrite);  // a file or a PostgreSQL URL
  if (!opened.ok()) {
    std::fprintf(stderr, "smtpblast: %s\n", opened.error().describe().c_str());
    ::close(lock);
    return 2;
  }
  TaskStore& store = **opened;
  auto keys = task_match_keys(store, false);
  if (!keys.ok()) {
    std::fprintf(stderr, "smtpblast: %s\n", keys.error().describe().c_str());
    ::close(lock);
    return 2;
  }
  if (keys->task_key.empty()) {
    std::fprintf(stderr, "smtpblast: task %s was never sent: no return can belong to it\n",
                 o.task.c_str());
    ::close(lock);
    return 2;
  }

  std::unique_ptr<RemoteMailbox> remote;
  if (!o.mailbox.empty()) {
    auto r = RemoteMailbox::open(rcfg);
    if (!r.ok()) {
      std::fprintf(stderr, "smtpblast: %s\n", r.error().message.c_str());
      ::close(lock);
      return 2;
    }
    remote = std::move(r).value();
  }

  Tally t;
  nlohmann::json results = nlohmann::json::array();
  int rc = 0;
  // Messages are recorded in batches, one transaction each (a commit per message would cost
  // more than the parsing); files are deleted only after their batch committed.
  struct Pending {
    Message msg;
    ReturnRecord rec;
    Classification cls;
    std::string email, why, format;
    MatchMethod method = MatchMethod::kNone;
  };
  std::vector<Pending> batch;
  // UID/UIDL keys of messages already recorded under another key (a new UIDVALIDITY, a
  // re-delivered copy): remembered too, so the next run does not fetch them again.
  std::vector<ReturnRecord> known_again;
  std::vector<ReturnRecord> recs;
  size_t batch_bytes = 0;
  constexpr size_t kBatch = 512;
  constexpr size_t kBatchBytes = 64u << 20;

  auto flush = [&]() -> bool {
    if (batch.empty() && known_again.empty()) return true;
    recs.clear();
    for (const Pending& p : batch) recs.push_back(p.rec);
    // The UID/UIDL memory goes in the same transaction as what came of the message.
    for (const Pending& p : batch) {
      if (p.msg.remote == nullptr) continue;
      ReturnRecord k;
      k.key = p.msg.remote->memory_key;
      k.result = "seen";
      k.time = p.rec.time;
      recs.push_back(std::move(k));
    }
    recs.insert(recs.end(), known_again.begin(), known_again.end());
    auto applied = store.record_returns(recs);
    if (!applied.ok()) {
      std::fprintf(stderr, "smtpblast: %s\n", applied.error().describe().c_str());
      return false;
    }
    known_again.clear();
    bool ok = true;
    for (size_t i = 0; i < batch.size() && ok; ++i) {
      Pending& p = batch[i];
      const ReturnApplied& ap = (*applied)[i];
      const ReturnRecord& rec = p.rec;
      if (ap.duplicate) {  // the same bytes twice in one batch
        ++t.seen;
        continue;
      }
      if (rec.id > 0) {
        switch (p.cls.cls) {
          case BounceClass::kHard: ++t.hard; break;
          case BounceClass::kSoft: ++t.soft; break;
          case BounceClass::kBlock: ++t.block; break;
          case BounceClass::kComplaint: ++t.complaints; break;
          default: ++t.other; break;
        }
      }
      if (!o.keep_dir.empty()) {
        fs::path kp = fs::path(o.keep_dir) / (rec.key + ".eml");
        std::ofstream f(kp, std::ios::binary);
        f.write(p.msg.bytes.data(), static_cast<std::streamsize>(p.msg.bytes.size()));
        if (!f) {
          std::fprintf(stderr, "smtpblast: --keep: cannot write %s\n", kp.c_str());
          ok = false;
          break;
        }
      }
      bool deleted = false;
      // Only messages matched to a recipient and recorded leave the mailbox.
      if (rec.id > 0 && p.msg.remote != nullptr) {
        if (auto st = remote->remove(*p.msg.remote); !st) {
          std::fprintf(stderr, "smtpblast: warning: cannot delete %s: %s\n", p.msg.name.c_str(),
                       st.error().message.c_str());
        } else {
          deleted = true;
          ++t.deleted;
        }
      }
      if (rec.id > 0 && !p.msg.path.empty()) {
        std::error_code ec;
        deleted = fs::remove(p.msg.path, ec);
        if (ec) {
          std::fprintf(stderr, "smtpblast: warning: cannot delete %s: %s\n", p.msg.path.c_str(),
                       ec.message().c_str());
        }
        if (deleted) ++t.deleted;
      }
      const char* status_after = rec.id > 0 ? status_name(ap.status) : "";
      if (o.json) {
        nlohmann::json j;
        j["message"] = p.msg.name;
        j["kind"] = rec.kind;
        j["format"] = p.format;
        j["result"] = rec.result;
        if (rec.id > 0) {
          j["id"] = rec.id;
          j["email"] = p.email;
          j["matched_by"] = match_method_name(p.method);
          j["class"] = rec.cls;
          j["category"] = rec.category;
          j["status"] = rec.status;
          j["diagnostic"] = rec.diagnostic;
          j["recipient_status"] = status_after;
          j["soft_count"] = ap.soft;
          j["deleted"] = deleted;
        } else if (!p.why.empty()) {
          j["why"] = p.why;
        }
        results.push_back(std::move(j));
      } else if (rec.id > 0) {
        std::printf("%s: %s %s %s/%s %s -> %s\n", p.msg.name.c_str(), p.email.c_str(),
                    rec.status.empty() ? "-" : rec.status.c_str(), rec.cls.c_str(),
                    rec.category.c_str(), match_method_name(p.method), status_after);
      } else {
        std::printf("%s: %s (%s)\n", p.msg.name.c_str(), rec.result.c_str(), p.why.c_str());
      }
    }
    batch.clear();
    batch_bytes = 0;
    return ok;
  };

  auto process = [&](Message& m) -> bool {
    ++t.read;
    std::string key = sha256_hex(m.bytes, m.size);
    auto seen = store.return_seen(key);
    if (!seen.ok()) {
      std::fprintf(stderr, "smtpblast: %s\n", seen.error().describe().c_str());
      return false;
    }
    if (*seen) {
      ++t.seen;
      if (m.remote == nullptr) return true;
      ReturnRecord k;
      k.key = m.remote->memory_key;
      k.result = "seen";
      k.time = static_cast<int64_t>(std::time(nullptr));
      known_again.push_back(std::move(k));
      return known_again.size() < kBatch || flush();
    }
    ReturnReport r = parse_return(m.bytes);
    Match match = match_return(r, *keys);
    Pending p;
    ReturnRecord& rec = p.rec;
    rec.key = key;
    rec.kind = return_kind_name(r.kind);
    rec.time = static_cast<int64_t>(std::time(nullptr));
    rec.soft_limit = o.soft_limit;
    p.format = r.format;
    p.method = match.method;
    p.why = match.why;
    const RecipientReport* rr = nullptr;
    if (r.kind == ReturnKind::kAutoReply) {
      rec.result = "autoreply";
      ++t.autoreplies;
    } else if (r.kind == ReturnKind::kUnknown) {
      rec.result = "unknown";
      p.why = r.problem;
      ++t.unknown;
    } else if (match.forged) {
      rec.result = "forged";
      ++t.forged;
    } else if (match.method == MatchMethod::kNone) {
      rec.result = "unmatched";
      ++t.unmatched;
    } else {
      auto addr = store.email_of(match.id);
      if (!addr.ok()) {
        std::fprintf(stderr, "smtpblast: %s\n", addr.error().describe().c_str());
        return false;
      }
      if (!addr->has_value()) {
        rec.result = "unmatched";
        p.why = "the task has no recipient " + std::to_string(match.id);
        ++t.unmatched;
      } else {
        p.email = **addr;
        std::string want = lower(p.email);
        for (const auto& x : r.recipients) {
          if (x.final_recipient == want || x.original_recipient == want) {
            rr = &x;
            break;
          }
        }
        // A DSN about other addresses is believed only through a VERP address (the mail
        // may have been forwarded); through a Message-ID it must name the recipient.
        bool believed = rr != nullptr || r.recipients.empty() || r.kind == ReturnKind::kArf ||
                        match.method == MatchMethod::kVerp;
        if (rr == nullptr && !r.recipients.empty() && believed) rr = &r.recipients[0];
        if (!believed) {
          rec.result = "unmatched";
          p.why = "the report is about " + r.recipients[0].final_recipient + ", not recipient " +
                  std::to_string(match.id) + " (" + p.email + ")";
          p.email.clear();
          ++t.unmatched;
        } else {
          size_t idx = rr ? static_cast<size_t>(rr - r.recipients.data()) : 0;
          p.cls = classifier->classify(r, idx);
          rec.id = match.id;
          rec.effect = effect_of(p.cls.cls);
          rec.cls = class_name(p.cls.cls);
          rec.category = p.cls.category;
          if (rr) {
            rec.status = rr->status;
            rec.diagnostic = rr->diagnostic;
          }
          rec.result = "recorded";
        }
      }
    }
    // The bytes are kept only for --keep; the path for deletion.
    if (o.keep_dir.empty()) {
      m.bytes.clear();
      m.bytes.shrink_to_fit();
    }
    batch_bytes += m.bytes.size();
    p.msg = std::move(m);
    batch.push_back(std::move(p));
    if (batch.size() >= kBatch || batch_bytes >= kBatchBytes) return flush();
    return true;
  };

  for (Message& m : msgs) {
    if (!process(m)) {
      rc = 2;
      break;
    }
  }
  for (const fs::path& p : files) {
    if (rc != 0) break;
    Message m;
    m.name = p.filename().string();
    m.path = p;
    std::string err;
    auto bytes = read_capped(p, &m.size, &err);
    if (!bytes) {
      // Removed by another reader since the listing: not ours to report.
      if (!fs::exists(p)) continue;
      std::fprintf(stderr, "smtpblast: --maildir: cannot read %s\n", err.c_str());
      rc = 2;
      break;
    }
    m.bytes = std::move(*bytes);
    if (!process(m)) rc = 2;
  }
  if (remote) {
    for (const RemoteItem& it : remote->items()) {
      if (rc != 0) break;
      auto seen = store.return_seen(it.memory_key);
      if (!seen.ok()) {
        std::fprintf(stderr, "smtpblast: %s\n", seen.error().describe().c_str());
        rc = 2;
        break;
      }
      if (*seen) {
        ++t.read;
        ++t.seen;
        continue;
      }
      auto bytes = remote->fetch(it, kMaxMessageRead);
      if (!bytes.ok()) {
        // What was recorded so far stays; the next run goes on from there (UID memory).
        std::fprintf(stderr, "smtpblast: %s\n", bytes.error().message.c_str());
        rc = 2;
        break;
      }
      Message m;
      m.name = (remote->is_pop3() ? "pop3 #" : "imap uid ") + it.id;
      m.remote = &it;
      m.size = bytes->size();
      m.bytes = std::move(*bytes);
      if (!process(m)) rc = 2;
    }
  }
  // Even after an error, what was read is recorded (and its messages deleted).
  if (!flush()) rc = 2;
  if (remote && rc == 0) {
    if (auto st = remote->finish(); !st) {
      std::fprintf(stderr, "smtpblast: %s\n", st.error().message.c_str());
      rc = 2;
    }
  }

  if (rc == 0 && !o.suppress_out.empty()) {
    auto addrs = store.returned_addresses();
    if (!addrs.ok()) {
      std::fprintf(stderr, "smtpblast: %s\n", addrs.error().describe().c_str());
      rc = 2;
    } else {
      std::string tmp = o.suppress_out + ".tmp";
      std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
      f << "# bounced and complained recipients of task " << o.task << "\n";
      for (const std::string& a : *addrs) f << a << "\n";
      f.close();
      std::error_code ec;
      if (!f) {
        std::fprintf(stderr, "smtpblast: --suppress-out: cannot write %s\n", tmp.c_str());
        rc = 2;
      } else if (fs::rename(tmp, o.suppress_out, ec); ec) {
        std::fprintf(stderr, "smtpblast: --suppress-out %s: %s\n", o.suppress_out.c_str(),
                     ec.message().c_str());
        rc = 2;
      }
    }
  }
  ::close(lock);
  if (o.json) {
    nlohmann::json j;
    j["task"] = o.task;
    j["read"] = t.read;
    j["already_processed"] = t.seen;
    j["hard"] = t.hard;
    j["soft"] = t.soft;
    j["block"] = t.block;
    j["complaints"] = t.complaints;
    j["autoreplies"] = t.autoreplies;
    j["unmatched"] = t.unmatched;
    j["forged"] = t.forged;
    j["unknown"] = t.unknown;
    j["deleted"] = t.deleted;
    j["messages"] = std::move(results);
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::fprintf(
        stderr,
        "returns: %llu read, %llu already processed; %llu hard, %llu soft, %llu block, "
        "%llu complaints recorded; %llu auto-replies, %llu unmatched, %llu forged, "
        "%llu unknown left alone; %llu deleted\n",
        static_cast<unsigned long long>(t.read), static_cast<unsigned long long>(t.seen),
        static_cast<unsigned long long>(t.hard), static_cast<unsigned long long>(t.soft),
        static_cast<unsigned long long>(t.block), static_cast<unsigned long long>(t.complaints),
        static_cast<unsigned long long>(t.autoreplies),
        static_cast<unsigned long long>(t.unmatched), static_cast<unsigned long long>(t.forged),
        static_cast<unsigned long long>(t.unknown), static_cast<unsigned long long>(t.deleted));
  }
  return rc;
}

Result<std::pair<RemoteMailboxConfig, uint64_t>> pop_before_smtp_config(
    const std::string& url, const std::string& password_file, const std::string& tls,
    const std::string& refresh) {
  RemoteMailboxConfig c;
  c.url = url;
  if (tls != "verify" && tls != "none") {
    return make_error(ErrDomain::kConfig, "--pop-tls: '" + tls + "' is not verify or none");
  }
  c.plain = tls == "none";
  if (!password_file.empty()) {
    std::ifstream f(password_file, std::ios::binary);
    if (!f) {
      return make_error(ErrDomain::kConfig, "--pop-password-file: cannot read " + password_file +
                                                ": " + std::strerror(errno));
    }
    std::getline(f, c.password);
    if (!c.password.empty() && c.password.back() == '\r') c.password.pop_back();
  } else if (const char* env = std::getenv("SMTPBLAST_POP_PASSWORD")) {
    c.password = env;
  } else {
    return make_error(ErrDomain::kConfig,
                      "--pop-before-smtp needs --pop-password-file FILE or "
                      "SMTPBLAST_POP_PASSWORD in the environment");
  }
  uint32_t ms = 0;
  if (!parse_duration_ms(refresh, ms) || ms < 1000) {
    return make_error(ErrDomain::kConfig,
                      "--pop-refresh: '" + refresh + "' is not a duration of at least 1s");
  }
  return std::make_pair(std::move(c), static_cast<uint64_t>(ms));
}

}  // namespace sb
