//! All integration tests, in one binary: each links rollcall once, which matters on 2 cores.
//! Every test starts a real server on a random port and runs once per database backend.

mod dns_server;
mod entra;
mod harness;
mod smtp_server;

mod accounts;
mod cli;
mod concurrency;
mod console;
mod hostile_input;
mod invitations;
mod load_balancer;
mod me;
mod members;
mod metrics;
mod ops;
mod orgs;
mod provisioning;
mod saml;
mod scim;
mod scim_adoption;
mod teams;
mod ui;
mod web;
