// The smtpblast command: parses the verb and its flags, runs it, returns the exit code.
#pragma once

namespace sb {
int run_cli(int argc, char** argv);
}
