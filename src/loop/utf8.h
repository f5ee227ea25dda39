// Forwarder: utf8.h moved to src/base; this goes once every branch includes "base/utf8.h".
#pragma once

#include "base/utf8.h"  // IWYU pragma: export
