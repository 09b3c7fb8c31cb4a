//! Socket.IO transport against a real socket.io server (tests/peers/socketio).
