"""infra/ports.py: free ports below the ephemeral range, never the same one twice."""

import socket
import unittest
import unittest.mock

import ports


class FreePort(unittest.TestCase):
    def test_ports_are_below_the_ephemeral_range_distinct_and_bindable(self):
        given = [ports.free_port() for _ in range(50)]
        self.assertEqual(len(set(given)), len(given))
        start = ports._ephemeral_start()
        for port in given:
            self.assertLess(port, start)
            with socket.socket() as s:
                s.bind(("127.0.0.1", port))

    def test_a_port_in_use_or_given_before_is_drawn_again(self):
        given, busy_port, free = ports.free_port(), ports.free_port(), ports.free_port()
        ports._given.difference_update({busy_port, free})  # busy for another reason; never given
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", busy_port))
            draws = iter([given, busy_port, free])
            with unittest.mock.patch("ports.random.randint", side_effect=lambda *_: next(draws)):
                self.assertEqual(ports.free_port(), free)

if __name__ == "__main__":
    unittest.main()
