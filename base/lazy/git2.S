// libgit2 (git triggers and git sources):
// bound lazily (stubs.inc). kiln's binary does not load the library at
// start, only on the first call of one of these functions. The list is
// every function of it the binary calls; //third_party:kiln_binary_link_test
// fails if one is missing (the library would be loaded at start again).
#include "base/lazy/stubs.inc"
#include "lazy_sonames.h"

KILN_LAZY_LIBRARY(KILN_SONAME_LIBGIT2)

KILN_LAZY git_blob_free
KILN_LAZY git_blob_lookup
KILN_LAZY git_blob_rawcontent
KILN_LAZY git_blob_rawsize
KILN_LAZY git_branch_lookup
KILN_LAZY git_buf_dispose
KILN_LAZY git_commit_author
KILN_LAZY git_commit_free
KILN_LAZY git_commit_id
KILN_LAZY git_commit_lookup
KILN_LAZY git_commit_message
KILN_LAZY git_commit_time
KILN_LAZY git_commit_tree
KILN_LAZY git_credential_ssh_key_memory_new
KILN_LAZY git_credential_userpass_plaintext_new
KILN_LAZY git_error_last
KILN_LAZY git_error_set_str
KILN_LAZY git_fetch_options_init
KILN_LAZY git_graph_descendant_of
KILN_LAZY git_libgit2_init
KILN_LAZY git_merge_base
KILN_LAZY git_object_free
KILN_LAZY git_object_id
KILN_LAZY git_object_peel
KILN_LAZY git_oid_equal
KILN_LAZY git_oid_tostr
KILN_LAZY git_reference_free
KILN_LAZY git_reference_is_branch
KILN_LAZY git_reference_is_valid_name
KILN_LAZY git_reference_peel
KILN_LAZY git_reference_shorthand
KILN_LAZY git_remote_create_anonymous
KILN_LAZY git_remote_default_branch
KILN_LAZY git_remote_fetch
KILN_LAZY git_remote_free
KILN_LAZY git_repository_free
KILN_LAZY git_repository_head
KILN_LAZY git_repository_init
KILN_LAZY git_repository_is_bare
KILN_LAZY git_repository_open_bare
KILN_LAZY git_repository_open_ext
KILN_LAZY git_repository_set_head
KILN_LAZY git_repository_workdir
KILN_LAZY git_revparse_single
KILN_LAZY git_revwalk_free
KILN_LAZY git_revwalk_hide
KILN_LAZY git_revwalk_new
KILN_LAZY git_revwalk_next
KILN_LAZY git_revwalk_push
KILN_LAZY git_revwalk_sorting
KILN_LAZY git_status_foreach_ext
KILN_LAZY git_status_options_init
KILN_LAZY git_tree_entry_byindex
KILN_LAZY git_tree_entry_filemode
KILN_LAZY git_tree_entry_id
KILN_LAZY git_tree_entry_name
KILN_LAZY git_tree_entrycount
KILN_LAZY git_tree_free
KILN_LAZY git_tree_lookup

KILN_LAZY_END
