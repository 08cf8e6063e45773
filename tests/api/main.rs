//! Every integration test in one binary (one link instead of one per file), sharing
//! `common::TestServer`: a real server on 127.0.0.1, port 0, over a real SQLite file.

mod common;

mod access_log;
mod architecture;
mod browser;
mod cli;
mod concurrency;
mod connections;
mod cookies;
mod cors;
mod example;
mod gateway;
mod import_django;
mod keys;
mod multi_instance;
mod outage;
mod overload;
mod passwords;
mod paths;
mod postgres_tls;
mod readme;
mod sessions;
mod static_files;
mod storage_faults;
mod store;
mod store_contract;
mod throttle;
mod tls;
mod token_api;
