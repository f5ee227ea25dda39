// Forwarder: display_text.h moved to src/base; this goes once every branch includes "base/display_text.h".
#pragma once

#include "base/display_text.h"  // IWYU pragma: export
