//! The `Stripe-Signature` header: `timestamped_hmac::parse_value` and Stripe's `verify`.

#![no_main]

use hookgate_providers::ProviderId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hookgate_fuzz::timestamped_header(ProviderId::Stripe, data));
