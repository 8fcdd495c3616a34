//! The MLLP listener over real TCP on 127.0.0.1: framing across reads, pipelining, noise,
//! oversized frames, refusals, handler failures, concurrency, idle timeout and shutdown.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use carecircle_hl7::{parse_ack, AckCode, AckSummary, AdtEvent, AdtOptions};
use carecircle_mllp::{frame, serve, HandlerOutcome, Inbound, MessageHandler, MllpClient, MllpConfig, PendingOutcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Stores control ids; the control id's prefix chooses what happens: `FAIL` fails, `PANIC`
/// panics, `SLOW` takes 300 ms, anything else is read as ADT and stored or rejected.
#[derive(Default)]
struct RecordingHandler {
    stored: Mutex<Vec<String>>,
    calls: AtomicUsize,
}

impl MessageHandler for RecordingHandler {
    async fn handle(&self, inbound: Inbound<'_>) -> HandlerOutcome {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let control_id = inbound.message.header().value(10).to_owned();
        if control_id.starts_with("FAIL") {
            return HandlerOutcome::Failed("storage unavailable".into());
        }
        if control_id.starts_with("PANIC") {
            panic!("handler bug");
        }
        if control_id.starts_with("SLOW") {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        match AdtEvent::from_message(inbound.message, &AdtOptions::default()) {
            Ok(_) => {
                self.stored.lock().unwrap().push(control_id);
                HandlerOutcome::Stored
            }
            Err(error) => HandlerOutcome::Rejected(error.to_rejection()),
        }
    }
}

impl RecordingHandler {
    fn stored(&self) -> Vec<String> {
        self.stored.lock().unwrap().clone()
    }
}

struct TestServer {
    address: std::net::SocketAddr,
    handler: Arc<RecordingHandler>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

async fn spawn_server(config: MllpConfig) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let handler = Arc::new(RecordingHandler::default());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(serve(listener, handler.clone(), config, shutdown.clone()));
    TestServer { address, handler, shutdown, task }
}

fn adt(control_id: &str) -> String {
    format!(
        "MSH|^~\\&|PAS|RXX01|CC|CC|20240301101502||ADT^A01^ADT_A01|{control_id}|P|2.5.1\r\
EVN|A01|20240301101500\r\
PID|1||9434765919^^^NHS^NH||SMITH^JOHN||19700101|M\r\
PV1|1|I|WARD1^BAY2^BED3\r"
    )
}

/// Reads `n` ACK frames from a raw stream.
async fn read_acks(stream: &mut TcpStream, n: usize) -> Vec<AckSummary> {
    let mut buffer = Vec::new();
    let mut acks = Vec::new();
    while acks.len() < n {
        let mut chunk = [0u8; 4096];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk)).await.unwrap().unwrap();
        assert!(read > 0, "connection closed after {} acks", acks.len());
        buffer.extend_from_slice(&chunk[..read]);
        while let Some(end) = buffer.iter().position(|&b| b == 0x1C) {
            assert_eq!(buffer[0], 0x0B, "ack frame starts with a start block");
            acks.push(parse_ack(&buffer[1..end]).unwrap());
            buffer.drain(..(end + 2).min(buffer.len()));
        }
    }
    acks
}

#[tokio::test]
async fn acknowledges_only_after_the_handler_stored() {
    let server = spawn_server(MllpConfig::default()).await;
    let mut client = MllpClient::connect(server.address).await.unwrap();
    let ack = client.send_and_read_ack(adt("SLOW-1").as_bytes()).await.unwrap();
    // The handler sleeps before storing: an ACK sent early would arrive before the store.
    assert_eq!(server.handler.stored(), ["SLOW-1"]);
    assert_eq!((ack.code, ack.control_id.as_str()), (AckCode::Accept, "SLOW-1"));
}

#[tokio::test]
async fn a_frame_split_across_many_reads_is_reassembled() {
    let server = spawn_server(MllpConfig::default()).await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream.set_nodelay(true).unwrap();
    for piece in frame(adt("SPLIT-1").as_bytes()).chunks(5) {
        stream.write_all(piece).await.unwrap();
        stream.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let acks = read_acks(&mut stream, 1).await;
    assert_eq!((acks[0].code, acks[0].control_id.as_str()), (AckCode::Accept, "SPLIT-1"));
}

#[tokio::test]
async fn pipelined_messages_in_one_write_are_answered_in_order() {
    let server = spawn_server(MllpConfig::default()).await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    let ids = ["P-1", "SLOW-P-2", "P-3", "FAIL-P-4", "P-5"];
    let bytes: Vec<u8> = ids.iter().flat_map(|id| frame(adt(id).as_bytes())).collect();
    stream.write_all(&bytes).await.unwrap();
    let acks = read_acks(&mut stream, ids.len()).await;
    let answered: Vec<&str> = acks.iter().map(|a| a.control_id.as_str()).collect();
    assert_eq!(answered, ids);
    let codes: Vec<AckCode> = acks.iter().map(|a| a.code).collect();
    assert_eq!(codes, [AckCode::Accept, AckCode::Accept, AckCode::Accept, AckCode::Error, AckCode::Accept]);
    assert_eq!(server.handler.stored(), ["P-1", "SLOW-P-2", "P-3", "P-5"]);
}

#[tokio::test]
async fn garbage_between_frames_is_skipped() {
    let server = spawn_server(MllpConfig::default()).await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    let mut bytes = b"GET / HTTP/1.1\r\n\r\n".to_vec();
    bytes.extend(frame(adt("G-1").as_bytes()));
    bytes.extend_from_slice(b"\r\n\x1c\x00\xff keepalive \n");
    bytes.extend(frame(adt("G-2").as_bytes()));
    stream.write_all(&bytes).await.unwrap();
    let acks = read_acks(&mut stream, 2).await;
    assert_eq!(
        acks.iter().map(|a| (a.code, a.control_id.as_str())).collect::<Vec<_>>(),
        [(AckCode::Accept, "G-1"), (AckCode::Accept, "G-2")]
    );
}

#[tokio::test]
async fn an_oversized_frame_is_rejected_and_the_connection_goes_on() {
    let config = MllpConfig { max_frame_bytes: 1024, ..MllpConfig::default() };
    let server = spawn_server(config).await;
    let mut client = MllpClient::connect(server.address).await.unwrap();
    let big = format!("{}NTE|1||{}\r", adt("BIG-1"), "x".repeat(10_000));
    let ack = client.send_and_read_ack(big.as_bytes()).await.unwrap();
    assert_eq!((ack.code, ack.control_id.as_str()), (AckCode::Reject, "BIG-1"));
    assert!(ack.text.unwrap().contains("at most 1024 bytes"));
    let ack = client.send_and_read_ack(adt("AFTER-1").as_bytes()).await.unwrap();
    assert_eq!((ack.code, ack.control_id.as_str()), (AckCode::Accept, "AFTER-1"));
    assert_eq!(server.handler.stored(), ["AFTER-1"]);
}

#[tokio::test]
async fn malformed_and_unsupported_messages_get_ar_or_ae_on_the_same_connection() {
    let server = spawn_server(MllpConfig::default()).await;
    let mut client = MllpClient::connect(server.address).await.unwrap();
    let cases: Vec<(String, AckCode, &str, Option<&str>)> = vec![
        ("not hl7 at all".into(), AckCode::Reject, "", Some("101")),
        ("MSH|^~|broken".into(), AckCode::Reject, "", Some("102")),
        (format!("{}pv2|lowercase\r", adt("SEG-1")), AckCode::Error, "SEG-1", Some("100")),
        (adt("TYPE-1").replace("ADT^A01^ADT_A01", "ORU^R01^ORU_R01"), AckCode::Reject, "TYPE-1", Some("200")),
        (adt("EVT-1").replace("ADT^A01^ADT_A01", "ADT^A31^ADT_A05"), AckCode::Reject, "EVT-1", Some("201")),
        (adt("PID-1").replace("9434765919^^^NHS^NH", ""), AckCode::Error, "PID-1", Some("101")),
        (adt("FAIL-1"), AckCode::Error, "FAIL-1", Some("207")),
        (adt("PANIC-1"), AckCode::Error, "PANIC-1", Some("207")),
        (String::new(), AckCode::Reject, "", Some("101")),
        (adt("OK-1"), AckCode::Accept, "OK-1", None),
    ];
    for (message, code, control_id, error_code) in cases {
        let ack = client.send_and_read_ack(message.as_bytes()).await.unwrap();
        assert_eq!((ack.code, ack.control_id.as_str()), (code, control_id), "{message:?}");
        assert_eq!(ack.error_code.as_deref(), error_code, "{message:?}");
    }
    assert_eq!(server.handler.stored(), ["OK-1"]);
}

#[tokio::test]
async fn concurrent_clients_are_all_served() {
    let server = spawn_server(MllpConfig::default()).await;
    let clients: Vec<JoinHandle<usize>> = (0..16)
        .map(|c| {
            let address = server.address;
            tokio::spawn(async move {
                let mut client = MllpClient::connect(address).await.unwrap();
                let mut accepted = 0;
                for m in 0..25 {
                    let id = format!("C{c}-{m}");
                    let ack = client.send_and_read_ack(adt(&id).as_bytes()).await.unwrap();
                    assert_eq!(ack.control_id, id);
                    accepted += usize::from(ack.code == AckCode::Accept);
                }
                accepted
            })
        })
        .collect();
    let mut total = 0;
    for client in clients {
        total += client.await.unwrap();
    }
    assert_eq!(total, 400);
    assert_eq!(server.handler.stored().len(), 400);
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let config = MllpConfig { idle_timeout: Some(Duration::from_millis(100)), ..MllpConfig::default() };
    let server = spawn_server(config).await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    let mut buffer = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await.unwrap();
    assert_eq!(read.unwrap(), 0, "the server closed the idle connection");
}

#[tokio::test]
async fn shutdown_finishes_the_message_in_hand_then_stops() {
    let server = spawn_server(MllpConfig::default()).await;
    let mut client = MllpClient::connect(server.address).await.unwrap();
    let in_flight = tokio::spawn(async move { client.send_and_read_ack(adt("SLOW-SHUTDOWN").as_bytes()).await });
    // Let the handler start, then ask the server to stop.
    while server.handler.calls.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.shutdown.cancel();
    let ack = in_flight.await.unwrap().unwrap();
    assert_eq!((ack.code, ack.control_id.as_str()), (AckCode::Accept, "SLOW-SHUTDOWN"));
    tokio::time::timeout(Duration::from_secs(5), server.task).await.unwrap().unwrap();
    assert!(TcpStream::connect(server.address).await.is_err(), "the listener is closed");
}

#[tokio::test]
async fn the_one_shot_client_reads_the_ack() {
    let server = spawn_server(MllpConfig::default()).await;
    let ack = carecircle_mllp::send_message(server.address, adt("ONE-1").as_bytes()).await.unwrap();
    assert_eq!((ack.code, ack.control_id.as_str()), (AckCode::Accept, "ONE-1"));
}

#[tokio::test]
async fn a_sender_vanishing_mid_frame_does_not_disturb_others() {
    let server = spawn_server(MllpConfig::default()).await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    let framed = frame(adt("HALF-1").as_bytes());
    stream.write_all(&framed[..framed.len() / 2]).await.unwrap();
    drop(stream);
    let ack = carecircle_mllp::send_message(server.address, adt("WHOLE-1").as_bytes()).await.unwrap();
    assert_eq!((ack.code, ack.control_id.as_str()), (AckCode::Accept, "WHOLE-1"));
    assert_eq!(server.handler.stored(), ["WHOLE-1"]);
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_their_turn() {
    let config = MllpConfig { max_connections: 1, ..MllpConfig::default() };
    let server = spawn_server(config).await;
    let mut first = MllpClient::connect(server.address).await.unwrap();
    first.send_and_read_ack(adt("FIRST-1").as_bytes()).await.unwrap();
    let address = server.address;
    let second = tokio::spawn(async move { carecircle_mllp::send_message(address, adt("SECOND-1").as_bytes()).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!second.is_finished(), "the second connection is not served while the first is open");
    drop(first);
    let ack = tokio::time::timeout(Duration::from_secs(5), second).await.unwrap().unwrap().unwrap();
    assert_eq!((ack.code, ack.control_id.as_str()), (AckCode::Accept, "SECOND-1"));
}

/// Takes messages in at once and stores each after a delay set by its control id (`SLOW`:
/// 300 ms, else 20 ms), like a handler that batches writes; records the order messages were
/// taken in and how many were in hand at most.
#[derive(Default)]
struct PipeliningHandler {
    taken_in: Mutex<Vec<String>>,
    in_hand: Arc<AtomicUsize>,
    most_in_hand: Arc<AtomicUsize>,
}

impl MessageHandler for PipeliningHandler {
    async fn handle(&self, inbound: Inbound<'_>) -> HandlerOutcome {
        self.accept(inbound).await.await
    }

    async fn accept(&self, inbound: Inbound<'_>) -> PendingOutcome {
        let control_id = inbound.message.header().value(10).to_owned();
        self.taken_in.lock().unwrap().push(control_id.clone());
        let now = self.in_hand.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_hand.fetch_max(now, Ordering::SeqCst);
        let in_hand = self.in_hand.clone();
        Box::pin(async move {
            let delay = if control_id.starts_with("SLOW") { 300 } else { 20 };
            tokio::time::sleep(Duration::from_millis(delay)).await;
            in_hand.fetch_sub(1, Ordering::SeqCst);
            if control_id.starts_with("FAIL") {
                HandlerOutcome::Failed("storage unavailable".into())
            } else {
                HandlerOutcome::Stored
            }
        })
    }
}

async fn spawn_pipelining_server(config: MllpConfig) -> (std::net::SocketAddr, Arc<PipeliningHandler>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let handler = Arc::new(PipeliningHandler::default());
    tokio::spawn(serve(listener, handler.clone(), config, CancellationToken::new()));
    (address, handler)
}

#[tokio::test]
async fn pipelined_messages_are_taken_in_together_and_answered_in_order() {
    let (address, handler) = spawn_pipelining_server(MllpConfig::default()).await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    // The first is slow, the others are stored before it: the ACKs still go out in order.
    let ids = ["SLOW-1", "Q-2", "FAIL-3", "Q-4", "Q-5"];
    let bytes: Vec<u8> = ids.iter().flat_map(|id| frame(adt(id).as_bytes())).collect();
    stream.write_all(&bytes).await.unwrap();
    let acks = read_acks(&mut stream, ids.len()).await;
    let answered: Vec<&str> = acks.iter().map(|a| a.control_id.as_str()).collect();
    assert_eq!(answered, ids);
    let codes: Vec<AckCode> = acks.iter().map(|a| a.code).collect();
    assert_eq!(codes, [AckCode::Accept, AckCode::Accept, AckCode::Error, AckCode::Accept, AckCode::Accept]);
    assert_eq!(*handler.taken_in.lock().unwrap(), ids, "taken in in the order received");
    assert_eq!(handler.most_in_hand.load(Ordering::SeqCst), ids.len(), "all five were in hand together");
}

#[tokio::test]
async fn at_most_max_pipelined_messages_of_a_connection_are_in_hand() {
    let config = MllpConfig { max_pipelined: 2, ..MllpConfig::default() };
    let (address, handler) = spawn_pipelining_server(config).await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    let ids: Vec<String> = (0..6).map(|i| format!("Q-{i}")).collect();
    let bytes: Vec<u8> = ids.iter().flat_map(|id| frame(adt(id).as_bytes())).collect();
    stream.write_all(&bytes).await.unwrap();
    let acks = read_acks(&mut stream, ids.len()).await;
    assert!(acks.iter().all(|a| a.code == AckCode::Accept));
    assert_eq!(handler.most_in_hand.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_sender_that_closes_after_pipelining_still_gets_every_ack() {
    let (address, _handler) = spawn_pipelining_server(MllpConfig::default()).await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    let ids = ["SLOW-H1", "H2", "H3"];
    let bytes: Vec<u8> = ids.iter().flat_map(|id| frame(adt(id).as_bytes())).collect();
    stream.write_all(&bytes).await.unwrap();
    stream.shutdown().await.unwrap(); // half-close: nothing more to send
    let acks = read_acks(&mut stream, ids.len()).await;
    let answered: Vec<&str> = acks.iter().map(|a| a.control_id.as_str()).collect();
    assert_eq!(answered, ids);
}
