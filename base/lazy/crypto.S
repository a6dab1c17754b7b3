// libcrypto (HMAC of secrets and webhooks, AES-GCM of the store's key
// file, random bytes, X.509 and the primitives under TLS; SHA-256 only on
// CPUs without SHA-NI, base/sha256.h): bound lazily (stubs.inc). kiln's
// binary does not load the library at start, only on the first call of one
// of these functions. The list is every function of it the binary calls
// (kiln's own code and the gRPC linked into it);
// //third_party:kiln_binary_link_test fails if one is missing (the library
// would be loaded at start again).
#include "base/lazy/stubs.inc"
#include "lazy_sonames.h"

KILN_LAZY_LIBRARY(KILN_SONAME_LIBCRYPTO)

KILN_LAZY ASN1_STRING_to_UTF8
KILN_LAZY BIO_ctrl
KILN_LAZY BIO_free
KILN_LAZY BIO_free_all
KILN_LAZY BIO_new
KILN_LAZY BIO_new_bio_pair
KILN_LAZY BIO_new_mem_buf
KILN_LAZY BIO_puts
KILN_LAZY BIO_read
KILN_LAZY BIO_s_mem
KILN_LAZY BIO_test_flags
KILN_LAZY BIO_write
KILN_LAZY CRYPTO_free
KILN_LAZY CRYPTO_get_ex_new_index
KILN_LAZY CRYPTO_memcmp
KILN_LAZY EC_KEY_free
KILN_LAZY EC_KEY_new_by_curve_name
KILN_LAZY ENGINE_by_id
KILN_LAZY ENGINE_ctrl_cmd_string
KILN_LAZY ENGINE_free
KILN_LAZY ENGINE_init
KILN_LAZY ENGINE_load_private_key
KILN_LAZY ENGINE_set_default
KILN_LAZY ERR_clear_error
KILN_LAZY ERR_error_string_n
KILN_LAZY ERR_get_error
KILN_LAZY ERR_print_errors
KILN_LAZY EVP_CIPHER_CTX_ctrl
KILN_LAZY EVP_CIPHER_CTX_free
KILN_LAZY EVP_CIPHER_CTX_new
KILN_LAZY EVP_DecryptFinal_ex
KILN_LAZY EVP_DecryptInit_ex
KILN_LAZY EVP_DecryptUpdate
KILN_LAZY EVP_DigestSignFinal
KILN_LAZY EVP_DigestSignInit
KILN_LAZY EVP_DigestSignUpdate
KILN_LAZY EVP_EncodeBlock
KILN_LAZY EVP_EncryptFinal_ex
KILN_LAZY EVP_EncryptInit_ex
KILN_LAZY EVP_EncryptUpdate
KILN_LAZY EVP_MD_CTX_free
KILN_LAZY EVP_MD_CTX_new
KILN_LAZY EVP_PKEY_cmp
KILN_LAZY EVP_PKEY_free
KILN_LAZY EVP_PKEY_new
KILN_LAZY EVP_PKEY_set1_RSA
KILN_LAZY EVP_aes_128_gcm
KILN_LAZY EVP_aes_256_gcm
KILN_LAZY EVP_sha256
KILN_LAZY GENERAL_NAME_free
KILN_LAZY HMAC
KILN_LAZY HMAC_CTX_free
KILN_LAZY HMAC_CTX_new
KILN_LAZY HMAC_Final
KILN_LAZY HMAC_Init_ex
KILN_LAZY HMAC_Update
KILN_LAZY OPENSSL_init_crypto
KILN_LAZY OPENSSL_sk_new_null
KILN_LAZY OPENSSL_sk_num
KILN_LAZY OPENSSL_sk_pop_free
KILN_LAZY OPENSSL_sk_push
KILN_LAZY OPENSSL_sk_value
KILN_LAZY PEM_read_bio_PrivateKey
KILN_LAZY PEM_read_bio_RSAPrivateKey
KILN_LAZY PEM_read_bio_X509
KILN_LAZY PEM_read_bio_X509_AUX
KILN_LAZY PEM_write_bio_X509
KILN_LAZY RAND_bytes
KILN_LAZY RSA_free
KILN_LAZY SHA256
KILN_LAZY SHA256_Final
KILN_LAZY SHA256_Init
KILN_LAZY SHA256_Update
KILN_LAZY X509_NAME_ENTRY_get_data
KILN_LAZY X509_NAME_dup
KILN_LAZY X509_NAME_free
KILN_LAZY X509_NAME_get_entry
KILN_LAZY X509_NAME_get_index_by_NID
KILN_LAZY X509_NAME_print_ex
KILN_LAZY X509_STORE_CTX_get_error
KILN_LAZY X509_STORE_add_cert
KILN_LAZY X509_STORE_free
KILN_LAZY X509_STORE_get0_param
KILN_LAZY X509_STORE_load_locations
KILN_LAZY X509_STORE_new
KILN_LAZY X509_STORE_set_flags
KILN_LAZY X509_STORE_set_verify_cb
KILN_LAZY X509_STORE_up_ref
KILN_LAZY X509_VERIFY_PARAM_set_flags
KILN_LAZY X509_free
KILN_LAZY X509_get_ext_d2i
KILN_LAZY X509_get_pubkey
KILN_LAZY X509_get_subject_name

KILN_LAZY_END
