//! Helpers shared by berth's end-to-end tests: isolated instances and the leak checker.
