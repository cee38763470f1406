//! A small authoritative DNS server on 127.0.0.1 for domain-verification and outbound tests:
//! it answers TXT and A queries from tables the test fills, NXDOMAIN for unknown names, and
//! SERVFAIL for names under `broken.test`.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use hickory_proto::{
    op::{Message, MessageType, ResponseCode},
    rr::{
        rdata::{A, TXT},
        RData, Record, RecordType,
    },
};
use tokio::net::UdpSocket;

type Records = Arc<Mutex<HashMap<String, Vec<String>>>>;

pub struct DnsServer {
    pub addr: SocketAddr,
    records: Records,
    task: tokio::task::JoinHandle<()>,
}

impl DnsServer {
    pub async fn start() -> DnsServer {
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind DNS socket");
        let addr = socket.local_addr().unwrap();
        let records: Records = Arc::default();
        let table = records.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let answer = respond(&query, &table);
                if let Ok(bytes) = answer.to_vec() {
                    let _ = socket.send_to(&bytes, peer).await;
                }
            }
        });
        DnsServer {
            addr,
            records,
            task,
        }
    }

    /// A records for `name` (it then exists, with no TXT records).
    pub fn set_a(&self, name: &str, addresses: &[&str]) {
        self.records.lock().unwrap().insert(
            name.trim_end_matches('.').to_ascii_lowercase(),
            addresses.iter().map(|a| format!("A {a}")).collect(),
        );
    }

    pub fn set_txt(&self, name: &str, values: &[&str]) {
        self.records.lock().unwrap().insert(
            name.trim_end_matches('.').to_ascii_lowercase(),
            values.iter().map(|v| v.to_string()).collect(),
        );
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn respond(query: &Message, records: &Records) -> Message {
    let mut response = Message::new();
    response
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(query.op_code())
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true)
        .set_authoritative(true);
    response.add_queries(query.queries().to_vec());
    let table = records.lock().unwrap();
    for q in query.queries() {
        let name = q
            .name()
            .to_ascii()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if name.ends_with("broken.test") {
            response.set_response_code(ResponseCode::ServFail);
            continue;
        }
        match table.get(&name) {
            Some(values) if q.query_type() == RecordType::A => {
                for value in values.iter().filter_map(|v| v.strip_prefix("A ")) {
                    let ip: std::net::Ipv4Addr = value.parse().expect("an IPv4 address");
                    response.add_answer(Record::from_rdata(q.name().clone(), 60, RData::A(A(ip))));
                }
            }
            Some(values) if q.query_type() == RecordType::TXT => {
                for value in values.iter().filter(|v| !v.starts_with("A ")) {
                    let rdata = RData::TXT(TXT::new(vec![value.clone()]));
                    response.add_answer(Record::from_rdata(q.name().clone(), 60, rdata));
                }
            }
            Some(_) => {}
            None => {
                response.set_response_code(ResponseCode::NXDomain);
            }
        }
    }
    response
}
