// The config file's pure parts: --config/--profile taken out of argv, the layering of
// sections and profiles, settings -> flags, redaction.
#include "cli/config_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

namespace sb {
namespace {

std::vector<std::string> take(std::vector<std::string> args, std::string* config = nullptr,
                              std::string* profile = nullptr) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  auto r = take_config_args(static_cast<int>(argv.size()), argv.data());
  EXPECT_TRUE(r.ok());
  if (!r.ok()) return {};
  if (config != nullptr) *config = r->config_path;
  if (profile != nullptr) *profile = r->profile;
  return r->args;
}

TEST(ConfigArgs, TakesConfigAndProfileBeforeOrAfterTheVerb) {
  std::string config, profile;
  EXPECT_EQ(
      take({"sb", "--config", "a.toml", "send", "--profile=p", "--task", "t"}, &config, &profile),
      (std::vector<std::string>{"sb", "send", "--task", "t"}));
  EXPECT_EQ(config, "a.toml");
  EXPECT_EQ(profile, "p");
  // After "--" nothing is a flag.
  EXPECT_EQ(take({"sb", "returns", "--", "--config", "x"}, &config),
            (std::vector<std::string>{"sb", "returns", "--", "--config", "x"}));
  EXPECT_EQ(config, "");
  std::vector<std::string> bad = {"sb", "send", "--config"};
  std::vector<char*> argv;
  for (std::string& a : bad) argv.push_back(a.data());
  EXPECT_FALSE(take_config_args(3, argv.data()).ok());
}

TEST(ConfigArgs, FlagsGivenAndSettingArgs) {
  std::vector<std::string> args = {"sb",         "send", "--relay", "h:25",
                                   "--rate=5/s", "x",    "--",      "--later"};
  EXPECT_EQ(flags_given(args, 2), (std::vector<std::string>{"relay", "rate"}));
  std::vector<ConfigSetting> s(3);
  s[0].key = "relay";
  s[0].values = {"other:25"};
  s[1].key = "suppress";
  s[1].values = {"a", "b"};
  s[2].key = "no-pipelining";
  s[2].flag = true;
  EXPECT_EQ(setting_args(s, {"relay"}),
            (std::vector<std::string>{"--suppress=a", "--suppress=b", "--no-pipelining"}));
}

TEST(ConfigArgs, Redaction) {
  EXPECT_EQ(redact_setting("oauth-token-cmd", "get --secret x"), "get <redacted>");
  EXPECT_EQ(redact_setting("oauth-token-cmd", "get"), "get");
  EXPECT_EQ(redact_setting("mailbox", "imaps://u:pw@h/INBOX"), "imaps://u:<redacted>@h/INBOX");
  EXPECT_EQ(redact_setting("mailbox", "imaps://u@h/INBOX"), "imaps://u@h/INBOX");
  EXPECT_EQ(redact_setting("password", "hunter2"), "<redacted>");
  EXPECT_EQ(redact_setting("relay", "h:25"), "h:25");
}

class ConfigLayers : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sb-config-test-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    send_ = app_.add_subcommand("send");
    send_->add_option("--relay", relay_);
    send_->add_option("--user", user_);
    send_->add_option("--password-file", pw_);
    send_->add_option("--connections", connections_);
    send_->add_option("--suppress", suppress_);
    send_->add_flag("--direct", direct_);
    check_ = app_.add_subcommand("check");
    check_->add_option("--relay", relay_);
    check_->add_option("--probe-rcpt", relay_);
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }

  std::string write(const std::string& text) {
    std::string p = dir_ + "/c.toml";
    std::ofstream(p) << text;
    ::chmod(p.c_str(), 0600);
    return p;
  }

  std::string value(const VerbConfig& c, const std::string& key) {
    for (const ConfigSetting& s : c.settings) {
      if (s.key == key) return s.flag ? "true" : s.values.empty() ? "" : s.values.back();
    }
    return "<none>";
  }

  std::string dir_;
  CLI::App app_;
  CLI::App* send_ = nullptr;
  CLI::App* check_ = nullptr;
  std::string relay_, user_, pw_;
  int connections_ = 0;
  std::vector<std::string> suppress_;
  bool direct_ = false;
};

TEST_F(ConfigLayers, ProfileBeatsVerbSectionBeatsTopLevel) {
  std::string p = write(
      "relay = \"top:25\"\nconnections = 2\nprobe-rcpt = \"x@y\"\n"
      "[send]\nrelay = \"send:25\"\ndirect = true\n"
      "[profile.a]\nconnections = 5\n"
      "[profile.a.send]\ndirect = false\n"
      "[profile.a.users.\"bob\"]\npassword-file = \"/bob\"\n");
  auto c = load_verb_config({p}, app_, *send_, "", "");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(value(*c, "relay"), "send:25");
  EXPECT_EQ(value(*c, "connections"), "2");
  EXPECT_EQ(value(*c, "direct"), "true");
  EXPECT_EQ(value(*c, "probe-rcpt"), "<none>");  // check's flag, not send's
  c = load_verb_config({p}, app_, *send_, "a", "bob");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(value(*c, "connections"), "5");
  EXPECT_EQ(value(*c, "direct"), "<none>");  // the profile turned it off
  EXPECT_EQ(value(*c, "password-file"), "/bob");
  c = load_verb_config({p}, app_, *check_, "a", "");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(value(*c, "relay"), "top:25");
  EXPECT_EQ(value(*c, "probe-rcpt"), "x@y");
}

TEST_F(ConfigLayers, ErrorsNameFileLineAndKey) {
  std::string p = write("relay = \"a:1\"\n\n[check]\nconnections = 3\n");
  auto c = load_verb_config({p}, app_, *send_, "", "");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message,
            p + ":4: unknown key 'connections' in [check]: check has no flag --connections");
  p = write("suppress = { a = 1 }\n");
  c = load_verb_config({p}, app_, *send_, "", "");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find(p + ":1: key 'suppress'"), std::string::npos)
      << c.error().message;
}

}  // namespace
}  // namespace sb
