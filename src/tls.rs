//! TLS for the admission listener: rustls with a certificate that reloads
//! without a restart.
