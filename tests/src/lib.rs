//! Test harness: throwaway slapd and memcached instances (placeholder: being written).
