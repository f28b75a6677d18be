"""Character chat: characters, personas, chats, cards, context assembly."""
