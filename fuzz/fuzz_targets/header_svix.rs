//! The `svix-*` / `webhook-*` headers: `standard_webhooks::headers` and `verify`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hookgate_fuzz::svix_headers(data));
