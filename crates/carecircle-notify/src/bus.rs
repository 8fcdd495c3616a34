//! The in-process event bus: the default, for a single server. Events go from the record's write
//! path to the notifier through an unbounded queue, in commit order; nothing survives a restart.

use async_trait::async_trait;
use carecircle_record::{ChangeEvent, EventBus};
use tokio::sync::mpsc;

/// An [`EventBus`] whose events are read by one [`EventStream`] in the same process.
pub struct InProcessBus {
    sender: mpsc::UnboundedSender<ChangeEvent>,
}

/// The receiving end of an [`InProcessBus`].
pub struct EventStream {
    receiver: mpsc::UnboundedReceiver<ChangeEvent>,
}

impl InProcessBus {
    /// A bus and the stream its events arrive on.
    pub fn new() -> (InProcessBus, EventStream) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (InProcessBus { sender }, EventStream { receiver })
    }
}

impl EventStream {
    /// The next event; `None` once every bus handle is gone.
    pub async fn next(&mut self) -> Option<ChangeEvent> {
        self.receiver.recv().await
    }
}

#[async_trait]
impl EventBus for InProcessBus {
    async fn publish(&self, events: Vec<ChangeEvent>) {
        for event in events {
            // The receiver lives as long as the notifier; once it is gone there is nobody to tell.
            let _ = self.sender.send(event);
        }
    }
}
