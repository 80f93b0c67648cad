#ifndef SPARSESERVE_COPENSSL_SHIM_H
#define SPARSESERVE_COPENSSL_SHIM_H
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/bio.h>
/* Wrappers for OpenSSL macros that Swift cannot import. */
static inline long cssl_ctx_set_min_tls12(SSL_CTX *ctx) {
    return SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
}
static inline long cssl_ctx_set_options_defaults(SSL_CTX *ctx) {
    return (long)SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
}
static inline long cssl_ctx_set_partial_write(SSL_CTX *ctx) {
    return SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}
static inline size_t cssl_bio_pending(BIO *b) { return (size_t)BIO_ctrl_pending(b); }
#endif
