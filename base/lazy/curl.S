// libcurl (HTTP: the registry client, the Kubernetes client, webhooks):
// bound lazily (stubs.inc). kiln's binary does not load the library at
// start, only on the first call of one of these functions. The list is
// every function of it the binary calls; //third_party:kiln_binary_link_test
// fails if one is missing (the library would be loaded at start again).
#include "base/lazy/stubs.inc"
#include "lazy_sonames.h"

KILN_LAZY_LIBRARY(KILN_SONAME_CURL)

KILN_LAZY curl_easy_cleanup
KILN_LAZY curl_easy_getinfo
KILN_LAZY curl_easy_init
KILN_LAZY curl_easy_perform
KILN_LAZY curl_easy_reset
KILN_LAZY curl_easy_setopt
KILN_LAZY curl_easy_strerror
KILN_LAZY curl_global_init
KILN_LAZY curl_multi_add_handle
KILN_LAZY curl_multi_cleanup
KILN_LAZY curl_multi_info_read
KILN_LAZY curl_multi_init
KILN_LAZY curl_multi_perform
KILN_LAZY curl_multi_poll
KILN_LAZY curl_multi_remove_handle
KILN_LAZY curl_multi_strerror
KILN_LAZY curl_multi_wakeup
KILN_LAZY curl_slist_append
KILN_LAZY curl_slist_free_all

KILN_LAZY_END
