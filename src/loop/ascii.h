// Forwarder: ascii.h moved to src/base; this goes once every branch includes "base/ascii.h".
#pragma once

#include "base/ascii.h"  // IWYU pragma: export
