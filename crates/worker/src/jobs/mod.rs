//! The job handlers, one module per queue family.

pub mod campaign;
pub mod import;
pub mod media;
pub mod scheduled;
pub mod sms;
pub mod webhook;

/// A message as its `message.*` events carry it: the API's representation,
/// timestamps in UTC with `Z` as the API writes them.
pub const MESSAGE_JSON: &str = "jsonb_build_object('id', id, 'tenant_id', tenant_id, \
    'direction', direction, 'from', from_number, 'to', to_number, 'body', body, 'status', status, \
    'segments', segments, 'encoding', encoding, 'carrier_sid', carrier_sid, 'error_code', error_code, \
    'customer_id', customer_id, 'campaign_id', campaign_id, 'template_id', template_id, \
    'agent_id', agent_id, \
    'created_at', to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
    'sent_at', to_char(sent_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
    'delivered_at', to_char(delivered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
    'version', version, \
    'updated_at', to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))";
