//! Integration tests of `pulse-gateway`: real gateways on 127.0.0.1:0 (in-process
//! and the built binary), real HTTP and WebSocket clients, no mocks.

mod common;

mod audience;
mod auth;
mod cli;
mod cluster;
mod demo;
mod garbage;
mod idempotency;
mod limits;
mod openapi;
mod rest;
mod service;
mod sessions;
mod source;
mod stream;
