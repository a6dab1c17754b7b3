// libssl (TLS: kiln serve and its clients, through gRPC): bound lazily
// (stubs.inc). kiln's binary does not load the library at start, only on
// the first call of one of these functions. The list is every function of
// it the binary calls (kiln's own code and the gRPC linked into it);
// //third_party:kiln_binary_link_test fails if one is missing (the library
// would be loaded at start again).
#include "base/lazy/stubs.inc"
#include "lazy_sonames.h"

KILN_LAZY_LIBRARY(KILN_SONAME_LIBSSL)

KILN_LAZY OPENSSL_init_ssl
KILN_LAZY SSL_CTX_callback_ctrl
KILN_LAZY SSL_CTX_check_private_key
KILN_LAZY SSL_CTX_ctrl
KILN_LAZY SSL_CTX_free
KILN_LAZY SSL_CTX_get_cert_store
KILN_LAZY SSL_CTX_get_ex_data
KILN_LAZY SSL_CTX_new
KILN_LAZY SSL_CTX_sess_set_new_cb
KILN_LAZY SSL_CTX_set_alpn_protos
KILN_LAZY SSL_CTX_set_alpn_select_cb
KILN_LAZY SSL_CTX_set_cert_store
KILN_LAZY SSL_CTX_set_cipher_list
KILN_LAZY SSL_CTX_set_client_CA_list
KILN_LAZY SSL_CTX_set_ex_data
KILN_LAZY SSL_CTX_set_keylog_callback
KILN_LAZY SSL_CTX_set_next_proto_select_cb
KILN_LAZY SSL_CTX_set_next_protos_advertised_cb
KILN_LAZY SSL_CTX_set_options
KILN_LAZY SSL_CTX_set_session_id_context
KILN_LAZY SSL_CTX_set_verify
KILN_LAZY SSL_CTX_use_PrivateKey
KILN_LAZY SSL_CTX_use_certificate
KILN_LAZY SSL_SESSION_free
KILN_LAZY SSL_ctrl
KILN_LAZY SSL_do_handshake
KILN_LAZY SSL_free
KILN_LAZY SSL_get0_alpn_selected
KILN_LAZY SSL_get0_next_proto_negotiated
KILN_LAZY SSL_get1_peer_certificate
KILN_LAZY SSL_get_SSL_CTX
KILN_LAZY SSL_get_error
KILN_LAZY SSL_get_peer_cert_chain
KILN_LAZY SSL_get_rbio
KILN_LAZY SSL_get_servername
KILN_LAZY SSL_is_init_finished
KILN_LAZY SSL_new
KILN_LAZY SSL_read
KILN_LAZY SSL_session_reused
KILN_LAZY SSL_set_SSL_CTX
KILN_LAZY SSL_set_accept_state
KILN_LAZY SSL_set_bio
KILN_LAZY SSL_set_connect_state
KILN_LAZY SSL_set_info_callback
KILN_LAZY SSL_set_session
KILN_LAZY SSL_state_string
KILN_LAZY SSL_state_string_long
KILN_LAZY SSL_write
KILN_LAZY TLS_method
KILN_LAZY d2i_SSL_SESSION
KILN_LAZY i2d_SSL_SESSION

KILN_LAZY_END
