// `smtpblast sms send`: an SMS mailing through the engine (issue 19): flags and the provider
// -> RunConfig with its SmsRunConfig -> the same run as `send`.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "base/result.h"
#include "engine/run_config.h"

namespace sb {

class SmsSendCmd {
 public:
  // Adds `send` under the `sms` subcommand.
  CLI::App* add(CLI::App* sms);
  bool parsed() const { return cmd_ != nullptr && cmd_->parsed(); }
  int run();

 private:
  CLI::App* cmd_ = nullptr;
  RunConfig mc_;
  std::string provider_;
  std::string provider_config_;
  std::string country_;
  std::string sender_;
  std::string phone_column_ = "phone";
  uint32_t window_ = 0;  // 0: the provider's
  std::string encoding_;
  std::string delim_ = ",";
  std::string retry_delay_ = "5s";
  std::string retry_max_ = "1h";
  std::string commit_interval_ = "100ms";
  std::string stop_timeout_ = "30s";
  std::string progress_ = "auto";
  std::vector<std::string> suppress_files_;
};

}  // namespace sb
