"""Characters, personas, chats, character cards and the assembly of a chat's context."""
