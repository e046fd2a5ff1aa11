//! Listeners and shutdown: HTTPS for admission, plain HTTP for admin.
