// Entry point of the smtpblast command.
#include "cli/app.h"

int main(int argc, char** argv) { return sb::run_cli(argc, argv); }
