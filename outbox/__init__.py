"""The transactional outbox: what happened, written in the same transaction as the change itself (a booking
confirmed, an invoice issued), so an event exists exactly when its change committed. Dispatchers (notify)
claim the events and turn them into deliveries; nothing here knows who hears of them."""
