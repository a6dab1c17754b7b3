#include "api/version.h"

namespace kiln {

const char* Version() { return KILN_VERSION_STRING; }

}  // namespace kiln
