//! `verify`, `identify` and `normalize` of the Supabase adapter on arbitrary requests; see
//! `hookgate_fuzz::provider` for the input layout.

#![no_main]

use hookgate_providers::ProviderId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hookgate_fuzz::provider(ProviderId::Supabase, data));
