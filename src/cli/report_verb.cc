// `smtpblast report`: a task (and its accounting log) as one self-contained HTML page.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "base/display_text.h"
#include "cli/pipeline.h"
#include "cli/verb.h"
#include "report/report.h"

namespace sb {

namespace {

// The directory --out goes into must exist: checked before any work, so a typo costs nothing.
std::string out_problem(const std::string& out) {
  namespace fs = std::filesystem;
  if (out.empty()) return "--out: give the HTML file to write";
  fs::path dir = fs::path(out).parent_path();
  if (dir.empty()) dir = ".";
  std::error_code ec;
  auto st = fs::status(dir, ec);
  if (st.type() == fs::file_type::not_found) {
    return "--out " + out + ": directory " + dir.string() + " does not exist";
  }
  if (ec) return "--out " + out + ": directory " + dir.string() + ": " + ec.message();
  if (st.type() != fs::file_type::directory) {
    return "--out " + out + ": " + dir.string() + " is not a directory";
  }
  if (fs::is_directory(out, ec)) return "--out " + out + " is a directory, not a file";
  return "";
}

class ReportVerb : public Verb {
 public:
  CLI::App* add(CLI::App& app) override {
    auto* cmd = app.add_subcommand(
        "report", "write a task's run report: one self-contained HTML file with charts");
    cmd->add_option("--task", opts_.task_path, "task file, or postgresql://USER@HOST/DB?task=NAME")
        ->required();
    cmd->add_option("--accounting", opts_.accounting_path,
                    "the run's accounting log (.csv or .jsonl): charts every attempt; without "
                    "it, each recipient's last outcome in the task");
    cmd->add_option("--out", out_, "the HTML file to write")->required();
    cmd->add_option("--top", opts_.top_destinations,
                    "destination domains listed one by one (the rest: \"other\")")
        ->check(CLI::Range(1, 1000));
    return cmd;
  }

  int run() override {
    if (std::string p = out_problem(out_); !p.empty()) {
      std::fprintf(stderr, "smtpblast: report: %s\n", display_escape(p).c_str());
      return kExitUsage;
    }
    auto data = collect_report(opts_);
    if (!data.ok()) {
      std::fprintf(stderr, "smtpblast: report: %s\n", display_escape(data.error().message).c_str());
      return kExitUsage;
    }
    std::string html = render_report_html(*data);
    std::FILE* f = std::fopen(out_.c_str(), "we");
    if (f == nullptr) {
      int e = errno;
      std::fprintf(stderr, "smtpblast: report: cannot write %s: %s\n", display_escape(out_).c_str(),
                   std::strerror(e));
      return kExitUsage;
    }
    bool ok = std::fwrite(html.data(), 1, html.size(), f) == html.size();
    int e = errno;
    ok = std::fclose(f) == 0 && ok;
    if (!ok) {
      std::fprintf(stderr, "smtpblast: report: cannot write %s: %s\n", display_escape(out_).c_str(),
                   std::strerror(e));
      return kExitUsage;
    }
    std::printf("report: %s (%s recipients%s)\n", display_escape(out_).c_str(),
                group_thousands(data->status.total).c_str(),
                opts_.accounting_path.empty() ? ", from the task" : ", with the accounting log");
    return kExitDone;
  }

 private:
  ReportOptions opts_;
  std::string out_;
};

}  // namespace

std::unique_ptr<Verb> make_report_verb() { return std::make_unique<ReportVerb>(); }

}  // namespace sb
