// rendered_header moved to message/ (the engine names backup copies with it).
#pragma once

#include "message/rendered_header.h"
