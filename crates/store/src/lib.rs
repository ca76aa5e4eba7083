//! Storage for SIP trunks, users and API keys.
